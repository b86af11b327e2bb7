# The APIs this configuration uses, enabled on the project so that it applies to a fresh
# one. Left enabled on destroy: other tools in the project may use them too, and disabling
# an API can break what depends on it (disable_on_destroy = false).
#
# Two APIs must be on before Terraform can enable anything (the bootstrap step in
# docs/cloud.md): serviceusage.googleapis.com (google_project_service itself) and
# cloudresourcemanager.googleapis.com (data.google_project, project IAM). They are listed
# here too so that they stay on. Eventarc is not: the functions are called by Pub/Sub push
# subscriptions, not event triggers (Google lists it as optional, for triggers only).

locals {
  project_services = toset([
    "artifactregistry.googleapis.com",     # the images repository; the functions' build images
    "cloudbuild.googleapis.com",           # builds the functions (and runs cloudbuild.yaml)
    "cloudfunctions.googleapis.com",       # google_cloudfunctions2_function
    "cloudresourcemanager.googleapis.com", # project lookups and project-level IAM
    "compute.googleapis.com",              # the cluster's VPC network and subnetwork
    "container.googleapis.com",            # GKE Autopilot
    "dns.googleapis.com",                  # the private googleapis.com zone of the VPC (dns.tf)
    "firebaserules.googleapis.com",        # the Firestore security rules (firestore.tf)
    "firestore.googleapis.com",            # the index
    "iam.googleapis.com",                  # service accounts and their IAM
    "iamcredentials.googleapis.com",       # Workload Identity: tokens for the Google service accounts of pods
    "logging.googleapis.com",              # functions', builds' and pods' logs
    "pubsub.googleapis.com",               # notifications and pipeline topics
    "run.googleapis.com",                  # Cloud Functions (2nd gen) and the HTTP API run as Cloud Run services
    "serviceusage.googleapis.com",         # google_project_service
    "storage.googleapis.com",              # the aBIDS and functions' source buckets
  ])
}

resource "google_project_service" "enabled" {
  for_each           = local.project_services
  project            = var.project
  service            = each.key
  disable_on_destroy = false
}
