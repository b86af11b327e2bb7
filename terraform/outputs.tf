output "bucket" {
  description = "The aBIDS bucket: upload datasets under datasets/<name>/."
  value       = google_storage_bucket.abids.name
}

output "notifications_topic" {
  description = "Topic receiving the bucket's object notifications."
  value       = google_pubsub_topic.notifications.id
}

output "dead_letters_topic" {
  description = "Where notifications go after max_delivery_attempts failures."
  value       = google_pubsub_topic.dead_letters.id
}

output "reruns_topic" {
  description = "Publish {\"query\": \"<aBIDS query>\"} here to re-index what it selects."
  value       = google_pubsub_topic.reruns.id
}

output "index_object_uri" {
  description = "URL of the index_object function (internal ingress only)."
  value       = google_cloudfunctions2_function.index_object.service_config[0].uri
}

output "functions_service_account" {
  description = "Identity of the functions."
  value       = google_service_account.functions.email
}

output "cli_environment" {
  description = "Environment for the rollerblade CLI against this deployment."
  value = {
    ROLLERBLADE_BACKEND           = "gcp"
    ROLLERBLADE_GCP_PROJECT       = var.project
    ROLLERBLADE_BUCKET            = google_storage_bucket.abids.name
    ROLLERBLADE_COLLECTION_PREFIX = var.collection_prefix
    ROLLERBLADE_TOPIC_PREFIX      = "rollerblade-" # the deployment indexes uploads: the CLI waits, never indexes twice
  }
}
