# The event-driven pipeline: one topic per named event (see docs/events.md), the rule
# engine and job-event functions behind push subscriptions with dead letters.
#
#   rollerblade-scans        scan.indexed              index_object -> rule_engine
#   rollerblade-job-results  job.succeeded, job.failed job_events   -> rule_engine
#   rollerblade-job-queue    job.queued                rule_engine  -> job_events (submit)
#   rollerblade-jobs         job.ended                 executor     -> job_events (commit)

locals {
  pipeline_routes = {
    scans       = "rule_engine"
    job-results = "rule_engine"
    job-queue   = "job_events"
    jobs        = "job_events"
  }
  pipeline_functions = {
    rule_engine = "rollerblade-rule-engine"
    job_events  = "rollerblade-job-events"
  }
}

resource "google_pubsub_topic" "pipeline" {
  # checkov:skip=CKV_GCP_83: messages are small event envelopes (ids, paths, job keys), encrypted at rest with Google-managed keys; a CMEK key ring cannot be deleted and adds KMS cost
  for_each   = local.pipeline_routes
  name       = "rollerblade-${each.key}"
  depends_on = [google_project_service.enabled]
}

resource "google_cloudfunctions2_function" "pipeline" {
  for_each = local.pipeline_functions
  name     = each.value
  location = var.region

  build_config {
    runtime         = "python311"
    entry_point     = each.key
    service_account = google_service_account.functions_build.id
    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    available_memory                 = var.function_memory
    timeout_seconds                  = 540
    max_instance_count               = var.function_max_instances
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    service_account_email            = google_service_account.functions.email
    # job_events submits the queued jobs to the cluster (functions.tf: gke_env)
    environment_variables = each.key == "job_events" ? merge(local.function_env, local.gke_env) : local.function_env
  }

  depends_on = [google_project_iam_member.functions_build_logs, google_project_iam_member.functions_build_images, google_project_iam_member.functions_build_objects]
}

resource "google_pubsub_subscription" "pipeline" {
  for_each             = local.pipeline_routes
  name                 = "rollerblade-${each.key}"
  topic                = google_pubsub_topic.pipeline[each.key].id
  ack_deadline_seconds = 540

  push_config {
    push_endpoint = google_cloudfunctions2_function.pipeline[each.value].service_config[0].uri
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

resource "google_pubsub_subscription_iam_member" "pipeline_dead_letter_subscriber" {
  for_each     = local.pipeline_routes
  subscription = google_pubsub_subscription.pipeline[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# The functions publish the pipeline's events on its topics, and nowhere else.
resource "google_pubsub_topic_iam_member" "functions_publish_pipeline" {
  for_each = local.pipeline_routes
  topic    = google_pubsub_topic.pipeline[each.key].id
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.functions.email}"
}

# The functions write derivatives (and the staged outputs and logs of jobs) to the bucket.
resource "google_storage_bucket_iam_member" "functions_write_bucket" {
  bucket = google_storage_bucket.abids.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.functions.email}"
}

resource "google_cloud_run_service_iam_member" "invoke_pipeline" {
  for_each = local.pipeline_functions
  location = var.region
  service  = google_cloudfunctions2_function.pipeline[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker.email}"
}
