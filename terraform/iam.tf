# Least privilege: the functions read the bucket and write Firestore; the invoker account
# only calls the functions. The cluster's identities are in workload_identity.tf, the
# CLI users' in users.tf, the HTTP API's in api.tf.

resource "google_service_account" "functions" {
  account_id   = "rollerblade-functions"
  display_name = "Rollerblade Cloud Functions (index_object, rerun, rule_engine, job_events)"
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "invoker" {
  account_id   = "rollerblade-invoker"
  display_name = "Pub/Sub push identity that invokes Rollerblade functions"
  depends_on   = [google_project_service.enabled]
}

resource "google_storage_bucket_iam_member" "functions_read_bucket" {
  bucket = google_storage_bucket.abids.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.functions.email}"
}

resource "google_project_iam_member" "functions_use_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.functions.email}"
}

# The rerun function publishes the batches of a large rerun on its own topic, and nowhere else.
resource "google_pubsub_topic_iam_member" "functions_publish_reruns" {
  topic  = google_pubsub_topic.reruns.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.functions.email}"
}
