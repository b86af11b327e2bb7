# The HTTP API (`rollerblade serve --http 0.0.0.0:8080 --no-events`) on Cloud Run, from
# Rollerblade's image as Cloud Build pushed it (var.api_image, by digest; empty: no service).
#
# Two gates, both on every request:
#   1. Cloud Run IAM: roles/run.invoker is granted to var.api_invoker_members only (the
#      variable refuses allUsers and allAuthenticatedUsers), so the caller sends a
#      Google-signed identity token of one of them, in `Authorization` or, when that header
#      carries a Rollerblade token, in `X-Serverless-Authorization`.
#   2. The app: a Rollerblade token (`rbt_...`), or a Google identity token whose audience
#      is ROLLERBLADE_GOOGLE_AUDIENCE, mapped to a Rollerblade user by its email
#      (`rollerblade user add NAME --email ...`); then the user's grants decide.
#
# The audience: the app must know its own URL, but the service's `uri` is known only once
# the service exists, and the service's environment cannot name itself (a cycle). Cloud
# Run's deterministic URL, https://SERVICE-PROJECT_NUMBER.REGION.run.app, is known before:
# it is the default audience, and the `api_url` output. var.api_audience replaces it (for
# a custom domain, say) and is then also declared as the service's custom audience, so
# that Cloud Run's own check accepts tokens minted for it. The check block below warns
# after an apply if Cloud Run did not give the service that deterministic URL.

locals {
  api_service  = "rollerblade-api"
  api_enabled  = var.api_image != ""
  api_url      = "https://${local.api_service}-${data.google_project.this.number}.${var.region}.run.app"
  api_audience = var.api_audience != "" ? var.api_audience : local.api_url
  # The functions' settings (functions.tf): the same backend, bucket, collections and
  # topics; the gke executor's name only, so that Analyses registered for the cluster keep
  # their recorded image digests (the API never connects to the cluster).
  api_env = merge(local.function_env, {
    ROLLERBLADE_GOOGLE_AUDIENCE = local.api_audience
  })
}

# The API's own identity, with what the routes need and no more.
resource "google_service_account" "api" {
  account_id   = "rollerblade-api"
  display_name = "Rollerblade HTTP API (Cloud Run)"
  depends_on   = [google_project_service.enabled]
}

# The index, users, tokens, grants and the audit log (Firestore has no per-collection IAM:
# the role is project-wide).
resource "google_project_iam_member" "api_uses_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.api.email}"
}

# Downloads read raw data and derivatives, job logs are read from logs/; a directory-like
# record (a .ds folder) is listed. It writes nothing to the bucket: uploads go through the
# CLI, and the staging of jobs through the functions.
resource "google_storage_bucket_iam_member" "api_reads_bucket" {
  bucket = google_storage_bucket.abids.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.api.email}"
  condition {
    title       = "data-derivatives-and-logs"
    description = "List the bucket; read objects under datasets/, derivatives/ and logs/."
    expression  = "resource.name == \"${local.bucket_resource}\" || resource.name.startsWith(\"${local.objects_resource}/datasets/\") || resource.name.startsWith(\"${local.objects_resource}/derivatives/\") || resource.name.startsWith(\"${local.objects_resource}/logs/\")"
  }
}

# POST /v1/runs queues jobs: job.queued on the job-queue topic, and no other topic (the API
# runs no rerun, import or rule change).
resource "google_pubsub_topic_iam_member" "api_publishes_job_queue" {
  topic  = google_pubsub_topic.pipeline["job-queue"].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.api.email}"
}

resource "google_cloud_run_v2_service" "api" {
  count       = local.api_enabled ? 1 : 0
  name        = local.api_service
  location    = var.region
  description = "Rollerblade HTTP API (rollerblade serve --http --no-events)"
  labels = {
    app = "rollerblade"
  }

  # Reachable from the internet by default (people and scripts outside Google Cloud), but
  # never anonymously: Cloud Run checks every request's Google identity against the
  # invoker bindings below.
  ingress              = var.api_ingress
  invoker_iam_disabled = false
  default_uri_disabled = false
  custom_audiences     = var.api_audience != "" ? [var.api_audience] : []
  # Stateless (everything lives in Firestore and the bucket): `terraform destroy` and a
  # re-apply lose nothing.
  deletion_protection = false

  template {
    service_account                  = google_service_account.api.email
    max_instance_request_concurrency = var.api_concurrency
    # zip downloads stream for as long as the selection takes; Cloud Run ends a request here
    timeout = "900s"

    scaling {
      min_instance_count = 0 # scale to zero: an idle API costs nothing
      max_instance_count = var.api_max_instances
    }

    containers {
      image   = var.api_image
      command = ["rollerblade"]
      args    = ["serve", "--http", "0.0.0.0:8080", "--no-events"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = var.api_memory
        }
        cpu_idle          = true # billed per request: no background work with --no-events
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.api_env
        content {
          name  = env.key
          value = env.value
        }
      }

      # /health answers without identity once the HTTP server is up.
      startup_probe {
        period_seconds    = 2
        timeout_seconds   = 2
        failure_threshold = 30
        http_get {
          path = "/health"
        }
      }
    }
  }

  # The first request may come as soon as the revision is ready: its identity needs its roles.
  depends_on = [
    google_project_iam_member.api_uses_firestore,
    google_storage_bucket_iam_member.api_reads_bucket,
    google_pubsub_topic_iam_member.api_publishes_job_queue,
  ]
}

# Who may call the API at all: var.api_invoker_members, and nobody else.
resource "google_cloud_run_v2_service_iam_member" "api_invokers" {
  for_each = local.api_enabled ? toset(var.api_invoker_members) : toset([])
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.api[0].name
  role     = "roles/run.invoker"
  member   = each.key
}

check "api_url_is_the_services" {
  assert {
    condition     = !local.api_enabled || contains(try(google_cloud_run_v2_service.api[0].urls, [local.api_url]), local.api_url)
    error_message = "Cloud Run did not give ${local.api_service} the URL ${local.api_url}: the API's Google audience (ROLLERBLADE_GOOGLE_AUDIENCE) and the api_url output name a URL the service does not answer; set api_audience to one of its URLs."
  }
}
