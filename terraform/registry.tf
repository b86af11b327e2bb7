# Rollerblade's image (functions' watcher, stage-in/store-out containers) and every
# Analysis image, pushed by Cloud Build and pulled by digest by the cluster's nodes.

resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84: images hold code, not data, and are encrypted at rest with Google-managed keys; a CMEK key ring cannot be deleted and adds KMS cost
  location      = var.region
  repository_id = var.artifact_registry_repository
  format        = "DOCKER"
  description   = "Rollerblade and Analysis images (pushed by Cloud Build, pulled by the GKE nodes)"

  docker_config {
    immutable_tags = var.artifact_immutable_tags
  }

  # Cleanup: untagged versions older than artifact_untagged_days are deleted, except the
  # artifact_keep_versions most recent ones of each image (a KEEP policy wins over a
  # DELETE one). Tagged versions are never deleted: a job's provenance names its image.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.artifact_keep_versions
    }
  }
  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "${var.artifact_untagged_days * 86400}s"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Image pulls are made by the kubelet as the nodes' service account, not by the pods.
resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.gke_nodes.email}"
}
