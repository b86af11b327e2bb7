# Topics: bucket notifications (with a dead-letter topic) and rerun requests.

resource "google_pubsub_topic" "notifications" {
  # checkov:skip=CKV_GCP_83: messages are small event envelopes (ids, paths, job keys), encrypted at rest with Google-managed keys; a CMEK key ring cannot be deleted and adds KMS cost
  name       = "rollerblade-bucket-notifications"
  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letters" {
  # checkov:skip=CKV_GCP_83: messages are small event envelopes (ids, paths, job keys), encrypted at rest with Google-managed keys; a CMEK key ring cannot be deleted and adds KMS cost
  name       = "rollerblade-dead-letters"
  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "reruns" {
  # checkov:skip=CKV_GCP_83: messages are small event envelopes (ids, paths, job keys), encrypted at rest with Google-managed keys; a CMEK key ring cannot be deleted and adds KMS cost
  name       = "rollerblade-reruns"
  depends_on = [google_project_service.enabled]
}

# Push each notification to index_object; a non-2xx answer is retried with backoff and,
# after max_delivery_attempts, the message goes to the dead-letter topic.
resource "google_pubsub_subscription" "index_object" {
  name                 = "rollerblade-index-object"
  topic                = google_pubsub_topic.notifications.id
  ack_deadline_seconds = 120

  push_config {
    push_endpoint = google_cloudfunctions2_function.index_object.service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.invoker.email
    }
  }

  retry_policy {
    minimum_backoff = "5s"
    maximum_backoff = "300s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

resource "google_pubsub_subscription" "reruns" {
  name                 = "rollerblade-reruns"
  topic                = google_pubsub_topic.reruns.id
  ack_deadline_seconds = 600

  push_config {
    push_endpoint = google_cloudfunctions2_function.rerun.service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.invoker.email
    }
  }

  # A failing rerun batch is retried with backoff (not at once, in a tight loop), then
  # dead-lettered like the notifications.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# Keep dead letters for inspection (a week).
resource "google_pubsub_subscription" "dead_letters" {
  name                       = "rollerblade-dead-letters"
  topic                      = google_pubsub_topic.dead_letters.id
  message_retention_duration = "604800s"
}

# Pub/Sub's service agent must be allowed to move messages to the dead-letter topic.
data "google_project" "this" {}

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letters.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = {
    index_object = google_pubsub_subscription.index_object.id
    reruns       = google_pubsub_subscription.reruns.id
  }
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
