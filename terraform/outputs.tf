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
  description = "Identity of the functions; deploy/k8s/ binds it to the Role that creates Jobs in jobs_namespace."
  value       = google_service_account.functions.email
}

output "functions_build_service_account" {
  description = "Identity Cloud Build uses to build the functions."
  value       = google_service_account.functions_build.email
}

output "artifact_registry" {
  description = "Docker repository for Rollerblade's and the Analyses' images: push REGISTRY/IMAGE:TAG."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "cluster_name" {
  description = "GKE Autopilot cluster that runs Analyses (gcloud container clusters get-credentials NAME --location LOCATION)."
  value       = google_container_cluster.jobs.name
}

output "cluster_location" {
  description = "Region of the cluster."
  value       = google_container_cluster.jobs.location
}

output "jobs_namespace" {
  description = "Kubernetes namespace of the Analysis Jobs and the job watcher."
  value       = var.jobs_namespace
}

output "job_service_account" {
  description = "Google service account of the Analysis pods' stage-in/store-out containers: annotate KSA rollerblade-job with it (iam.gke.io/gcp-service-account)."
  value       = google_service_account.job.email
}

output "watcher_service_account" {
  description = "Google service account of the job watcher: annotate KSA rollerblade-watcher with it (iam.gke.io/gcp-service-account)."
  value       = google_service_account.watcher.email
}

output "cli_environment" {
  description = "Environment for the rollerblade CLI against this deployment."
  value = {
    ROLLERBLADE_BACKEND           = "gcp"
    ROLLERBLADE_GCP_PROJECT       = var.project
    ROLLERBLADE_BUCKET            = google_storage_bucket.abids.name
    ROLLERBLADE_COLLECTION_PREFIX = var.collection_prefix
    ROLLERBLADE_TOPIC_PREFIX      = "rollerblade-" # the deployment indexes uploads: the CLI waits, never indexes twice
    ROLLERBLADE_GKE_NAMESPACE     = var.jobs_namespace
  }
}

output "api_url" {
  description = "URL of the HTTP API on Cloud Run (null without api_image). Callers need roles/run.invoker (api_invoker_members); a Google identity token for the API has this audience unless api_audience says otherwise."
  value       = local.api_enabled ? local.api_url : null
}

output "api_audience" {
  description = "Audience of the Google identity tokens the API accepts (ROLLERBLADE_GOOGLE_AUDIENCE)."
  value       = local.api_audience
}

output "api_service" {
  description = "Name of the API's Cloud Run service (null without api_image)."
  value       = local.api_enabled ? google_cloud_run_v2_service.api[0].name : null
}

output "api_service_account" {
  description = "Identity the API runs as."
  value       = google_service_account.api.email
}
