# The aBIDS bucket and its object notifications -> Pub/Sub.

resource "google_storage_bucket" "abids" {
  name                        = var.bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }
}

# Cloud Storage publishes notifications as its own service agent.
data "google_storage_project_service_account" "gcs" {}

resource "google_pubsub_topic_iam_member" "gcs_publishes_notifications" {
  topic  = google_pubsub_topic.notifications.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "objects" {
  bucket         = google_storage_bucket.abids.name
  topic          = google_pubsub_topic.notifications.id
  payload_format = "JSON_API_V1"
  # The bucket is versioned: deleting a file archives its live version (OBJECT_ARCHIVE)
  # rather than deleting it; index_object handles archives as deletions.
  event_types = ["OBJECT_FINALIZE", "OBJECT_DELETE", "OBJECT_ARCHIVE"]
  depends_on  = [google_pubsub_topic_iam_member.gcs_publishes_notifications]
}

# The functions' source, uploaded next to the data but outside datasets/.
resource "google_storage_bucket" "functions_source" {
  name                        = "${var.bucket_name}-functions"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
}

resource "google_storage_bucket_object" "functions_source" {
  name   = "rollerblade-functions-${filemd5(var.function_source_zip)}.zip"
  bucket = google_storage_bucket.functions_source.name
  source = var.function_source_zip
}
