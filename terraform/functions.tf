# index_object and rerun: Cloud Functions (gen2), HTTP-triggered by the push
# subscriptions in pubsub.tf (so that dead-lettering and retry backoff apply).

locals {
  function_env = {
    ROLLERBLADE_BACKEND           = "gcp"
    ROLLERBLADE_GCP_PROJECT       = var.project
    ROLLERBLADE_BUCKET            = google_storage_bucket.abids.name
    ROLLERBLADE_COLLECTION_PREFIX = var.collection_prefix
    # the rerun function fans large selections out as batches on the reruns topic
    ROLLERBLADE_TOPIC_PREFIX = "rollerblade-"
  }
}

resource "google_cloudfunctions2_function" "index_object" {
  name     = "rollerblade-index-object"
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = "index_object"
    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    available_memory                 = var.function_memory
    timeout_seconds                  = 120
    max_instance_count               = var.function_max_instances
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    service_account_email            = google_service_account.functions.email
    environment_variables            = local.function_env
  }
}

resource "google_cloudfunctions2_function" "rerun" {
  name     = "rollerblade-rerun"
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = "rerun"
    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    available_memory      = var.function_memory
    timeout_seconds       = 540
    max_instance_count    = 2
    ingress_settings      = "ALLOW_INTERNAL_ONLY"
    service_account_email = google_service_account.functions.email
    environment_variables = local.function_env
  }
}

# Only the push subscriptions' identity may call the functions.
resource "google_cloud_run_service_iam_member" "invoke_index_object" {
  location = var.region
  service  = google_cloudfunctions2_function.index_object.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker.email}"
}

resource "google_cloud_run_service_iam_member" "invoke_rerun" {
  location = var.region
  service  = google_cloudfunctions2_function.rerun.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker.email}"
}
