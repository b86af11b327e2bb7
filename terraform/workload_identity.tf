# The cluster's workloads act as Google service accounts through Workload Identity: a
# Kubernetes service account (KSA) in var.jobs_namespace may impersonate one Google service
# account (GSA) because the GSA grants roles/iam.workloadIdentityUser to the member
#   serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA]
# The KSAs themselves (annotated iam.gke.io/gcp-service-account=GSA email) and the
# namespace are applied from deploy/k8s/ by Cloud Build.
#
#   KSA rollerblade-job      stage-in/store-out containers of each Analysis pod (the
#                            Analysis container itself gets no token)
#   KSA rollerblade-watcher  the job watcher Deployment
#
# Bucket access is narrowed with IAM conditions on object-name prefixes (the bucket has
# uniform bucket-level access, which conditions require). Listing is checked against the
# bucket itself (resource.name "projects/_/buckets/B"), never against an object name, so
# a principal that lists also needs the bucket in its condition: it then sees the names of
# all objects, but reads or writes only under its prefixes.

locals {
  job_ksa          = "rollerblade-job"
  watcher_ksa      = "rollerblade-watcher"
  bucket_resource  = "projects/_/buckets/${google_storage_bucket.abids.name}"
  objects_resource = "${local.bucket_resource}/objects"
}

resource "google_service_account" "job" {
  account_id   = "rollerblade-job"
  display_name = "Rollerblade Analysis pods: stage-in and store-out (KSA ${local.job_ksa})"
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "watcher" {
  account_id   = "rollerblade-watcher"
  display_name = "Rollerblade job watcher (KSA ${local.watcher_ksa})"
  depends_on   = [google_project_service.enabled]
}

# The workload pool exists once the cluster does: the bindings wait for it.
resource "google_service_account_iam_member" "job_workload_identity" {
  service_account_id = google_service_account.job.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.jobs_namespace}/${local.job_ksa}]"
  depends_on         = [google_container_cluster.jobs]
}

resource "google_service_account_iam_member" "watcher_workload_identity" {
  service_account_id = google_service_account.watcher.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.jobs_namespace}/${local.watcher_ksa}]"
  depends_on         = [google_container_cluster.jobs]
}

# --- Analysis pods (stage-in / store-out) ---

# Stage-in reads the job's input slice: raw data under datasets/, and the derivatives of
# earlier Analyses (a chain's later steps take them as inputs).
resource "google_storage_bucket_iam_member" "job_reads_inputs" {
  bucket = google_storage_bucket.abids.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.job.email}"
  condition {
    title       = "inputs-only"
    description = "List the bucket; read objects under datasets/ and derivatives/."
    expression  = "resource.name == \"${local.bucket_resource}\" || resource.name.startsWith(\"${local.objects_resource}/datasets/\") || resource.name.startsWith(\"${local.objects_resource}/derivatives/\")"
  }
}

# Store-out writes the staged outputs under jobs/ and the job's log under logs/ (object
# user: a retried attempt overwrites, which takes delete). Committing them to
# derivatives/ is the functions' work, not the pod's.
resource "google_storage_bucket_iam_member" "job_writes_outputs" {
  bucket = google_storage_bucket.abids.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.job.email}"
  condition {
    title       = "staging-and-logs-only"
    description = "Create, read, overwrite and delete objects under jobs/ and logs/."
    expression  = "resource.name.startsWith(\"${local.objects_resource}/jobs/\") || resource.name.startsWith(\"${local.objects_resource}/logs/\")"
  }
}

# --- The job watcher ---

# It publishes job.ended (and the reconciler's verdicts) on the jobs topic, and nowhere else.
resource "google_pubsub_topic_iam_member" "watcher_publishes_jobs" {
  topic  = google_pubsub_topic.pipeline["jobs"].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.watcher.email}"
}

# It stores the pods' logs under logs/.
resource "google_storage_bucket_iam_member" "watcher_writes_logs" {
  bucket = google_storage_bucket.abids.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.watcher.email}"
  condition {
    title       = "logs-only"
    description = "List the bucket; read and write objects under logs/."
    expression  = "resource.name == \"${local.bucket_resource}\" || resource.name.startsWith(\"${local.objects_resource}/logs/\")"
  }
}

# It reads the job records (Firestore has no per-collection IAM: the role is project-wide).
resource "google_project_iam_member" "watcher_uses_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.watcher.email}"
}

# --- The functions' access to the cluster ---

# job_events creates Jobs in var.jobs_namespace, as the functions' Google service account.
# IAM can only grant Kubernetes rights cluster-wide, so IAM gives it no more than reaching
# the API (container.clusters.get: Cluster Viewer); the rights in the namespace come from
# Kubernetes RBAC, a Role in var.jobs_namespace bound to the functions' service account
# email, applied from deploy/k8s/ by Cloud Build.
resource "google_project_iam_member" "functions_reach_cluster" {
  project = var.project
  role    = "roles/container.clusterViewer"
  member  = "serviceAccount:${google_service_account.functions.email}"
}
