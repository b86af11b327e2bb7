# The Firestore database and the composite indexes of firestore.indexes.json (the queries
# Rollerblade runs natively; the emulator needs none, production does).

resource "google_firestore_database" "index" {
  name        = "(default)"
  location_id = var.region
  type        = "FIRESTORE_NATIVE"
}

locals {
  firestore_indexes = jsondecode(file("${path.module}/../firestore.indexes.json")).indexes
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
