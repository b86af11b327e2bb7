# The aBIDS bucket and its object notifications -> Pub/Sub.

resource "google_storage_bucket" "abids" {
  # checkov:skip=CKV_GCP_62: legacy usage logs into another bucket; object access is audited with Cloud Audit Logs instead (var.audit_bucket_access)
  name                        = var.bucket_name
  location                    = var.region
  uniform_bucket_level_access = true # required by the IAM conditions on object prefixes (workload_identity.tf)
  public_access_prevention    = "enforced"

  # Versioned: an overwritten or deleted file stays recoverable...
  versioning {
    enabled = true
  }

  # ...for noncurrent_version_days, then its old version is deleted (live objects never are).
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Data Access audit logs record who read or wrote which object (off by default: cost).
resource "google_project_iam_audit_config" "storage" {
  count   = var.audit_bucket_access ? 1 : 0
  project = var.project
  service = "storage.googleapis.com"
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
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
  # checkov:skip=CKV_GCP_62: holds only the zipped functions' source, rebuilt from git; no access log needed
  # checkov:skip=CKV_GCP_78: objects are content-addressed (named by their MD5) and never overwritten, so versions would add nothing
  name                        = "${var.bucket_name}-functions"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  depends_on                  = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "functions_source" {
  name   = "rollerblade-functions-${filemd5(var.function_source_zip)}.zip"
  bucket = google_storage_bucket.functions_source.name
  source = var.function_source_zip
}
