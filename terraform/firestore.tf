# The Firestore database and the composite indexes of firestore.indexes.json (the queries
# Rollerblade runs natively; the emulator needs none, production does).

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
