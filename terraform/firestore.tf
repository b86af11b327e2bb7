# The Firestore database, the composite indexes of firestore.indexes.json (the queries
# Rollerblade runs natively; the emulator needs none, production does), and the security
# rules of firestore.rules (no client access at all).

resource "google_firestore_database" "index" {
  name        = "(default)"
  location_id = var.region
  type        = "FIRESTORE_NATIVE"
  depends_on  = [google_project_service.enabled]
}

locals {
  firestore_config    = jsondecode(file("${path.module}/../firestore.indexes.json"))
  firestore_indexes   = local.firestore_config.indexes
  firestore_overrides = local.firestore_config.fieldOverrides
}

# Fields never queried are exempt from indexing: the record JSON (large), and generations,
# which only grow and would cap a collection's write rate (Firestore's guidance on
# monotonically increasing indexed fields).
resource "google_firestore_field" "exempt" {
  for_each   = { for o in local.firestore_overrides : "${o.collectionGroup}-${o.fieldPath}" => o }
  database   = google_firestore_database.index.name
  collection = "${var.collection_prefix}${each.value.collectionGroup}"
  field      = each.value.fieldPath
  index_config {}
}

resource "google_firestore_index" "composite" {
  for_each   = { for i, index in local.firestore_indexes : "${index.collectionGroup}-${i}" => index }
  database   = google_firestore_database.index.name
  collection = "${var.collection_prefix}${each.value.collectionGroup}"

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.fieldPath
      order      = fields.value.order
    }
  }
}

# firestore.rules, as committed (tests/cloud/test_firestore_rules.py runs it in the emulator):
# every client request is refused. Rules govern only end-user clients (client SDKs, REST
# without IAM); the deployment's services reach Firestore with IAM and are not subject to
# them. A new file content makes a new ruleset (rulesets are immutable); the release is
# then replaced so that it points at it, and the old ruleset, no longer in use, is deleted.
resource "google_firebaserules_ruleset" "firestore" {
  project = var.project
  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/../firestore.rules")
    }
  }
  depends_on = [google_project_service.enabled, google_firestore_database.index]
}

# The release the (default) database enforces.
resource "google_firebaserules_release" "firestore" {
  project      = var.project
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project}/rulesets/${google_firebaserules_ruleset.firestore.name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}
