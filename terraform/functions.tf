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
    # Analyses run on the GKE Autopilot cluster (gke.tf), at most max_jobs at once; the
    # executor connects only when a function first submits or inspects a job.
    ROLLERBLADE_EXECUTOR = "gke"
    ROLLERBLADE_MAX_JOBS = tostring(var.max_jobs)
  }

  # Only the function that submits Jobs (job_events, on the job-queue topic) talks to the
  # cluster: its public endpoint (private nodes; reachable from Google Cloud's addresses and
  # master_authorized_networks only) and the cluster CA, base64-encoded PEM as GKE returns it.
  gke_env = merge(
    {
      ROLLERBLADE_GKE_NAMESPACE = var.jobs_namespace
      ROLLERBLADE_GKE_ENDPOINT  = "https://${google_container_cluster.jobs.endpoint}"
      ROLLERBLADE_GKE_CA_CERT   = google_container_cluster.jobs.master_auth[0].cluster_ca_certificate
    },
    var.stager_image == "" ? {} : { ROLLERBLADE_STAGER_IMAGE = var.stager_image },
  )
}

# Cloud Build builds each function's image as this account rather than the project's
# default one (which new projects no longer grant enough rights, and which is shared with
# everything else). Its roles are the ones Google documents for a function's build service
# account: write build logs, push the built image to Artifact Registry, read the source
# and write build artifacts in Cloud Storage.
resource "google_service_account" "functions_build" {
  account_id   = "rollerblade-functions-build"
  display_name = "Builds the Rollerblade Cloud Functions (Cloud Build)"
  depends_on   = [google_project_service.enabled]
}

resource "google_project_iam_member" "functions_build_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.functions_build.email}"
}

# The build runs third-party code (pip installs requirements.txt), so the two project-wide
# roles Google documents for it are conditioned to exclude what it must not touch: the
# Analyses' image repository (it pushes only to the repositories Cloud Functions creates,
# gcf-artifacts and the like, whose names are not ours to fix)...
resource "google_project_iam_member" "functions_build_images" {
  project = var.project
  role    = "roles/artifactregistry.writer"
  member  = "serviceAccount:${google_service_account.functions_build.email}"
  condition {
    title       = "not-the-analysis-images"
    description = "Every repository of the project except Rollerblade's images repository."
    expression  = "!resource.name.startsWith(\"projects/${var.project}/locations/${var.region}/repositories/${var.artifact_registry_repository}\")"
  }
}

# ...and the aBIDS bucket, where the lab's data lives (it reads the source and writes build
# artifacts in the buckets Cloud Functions creates, gcf-v2-*).
resource "google_project_iam_member" "functions_build_objects" {
  project = var.project
  role    = "roles/storage.objectAdmin"
  member  = "serviceAccount:${google_service_account.functions_build.email}"
  condition {
    title       = "not-the-abids-bucket"
    description = "Every bucket of the project except the aBIDS data bucket."
    expression  = "!(resource.name == \"projects/_/buckets/${var.bucket_name}\" || resource.name.startsWith(\"projects/_/buckets/${var.bucket_name}/\"))"
  }
}

resource "google_cloudfunctions2_function" "index_object" {
  name     = "rollerblade-index-object"
  location = var.region

  build_config {
    runtime         = "python311"
    entry_point     = "index_object"
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
    timeout_seconds                  = 120
    max_instance_count               = var.function_max_instances
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    service_account_email            = google_service_account.functions.email
    environment_variables            = local.function_env
  }

  # the build starts as soon as the function is created: its account needs its roles first
  depends_on = [google_project_iam_member.functions_build_logs, google_project_iam_member.functions_build_images, google_project_iam_member.functions_build_objects]
}

resource "google_cloudfunctions2_function" "rerun" {
  name     = "rollerblade-rerun"
  location = var.region

  build_config {
    runtime         = "python311"
    entry_point     = "rerun"
    service_account = google_service_account.functions_build.id
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

  # the build starts as soon as the function is created: its account needs its roles first
  depends_on = [google_project_iam_member.functions_build_logs, google_project_iam_member.functions_build_images, google_project_iam_member.functions_build_objects]
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
