# The people who use the rollerblade CLI against this deployment (var.cli_members, e.g.
# "group:lab@example.org"): what `import`, `query`, `download`, `reindex`, `rules` and
# `status` need, and no more.
#
#   bucket        objectUser    upload datasets, read data and derivatives, fetch logs
#   Firestore     datastore.user  query the index, claim dataset names on import
#   Pub/Sub       publisher on the deployment's topics (rerun requests, queued jobs)
#                 subscriber on the dead-letters subscription (`status` shows them)
#   GKE           clusterViewer   reach the cluster's API for `status`; what they may read
#                 in the jobs namespace is Kubernetes RBAC (deploy/k8s/), and their
#                 address must be in master_authorized_networks.

locals {
  cli_topics = merge(
    { reruns = google_pubsub_topic.reruns.id },
    { for k, t in google_pubsub_topic.pipeline : k => t.id },
  )
  cli_topic_grants = { for pair in setproduct(var.cli_members, keys(local.cli_topics)) : "${pair[0]} ${pair[1]}" => { member = pair[0], topic = local.cli_topics[pair[1]] } }
}

resource "google_storage_bucket_iam_member" "cli_bucket" {
  for_each = toset(var.cli_members)
  bucket   = google_storage_bucket.abids.name
  role     = "roles/storage.objectUser"
  member   = each.key
}

resource "google_project_iam_member" "cli_firestore" {
  for_each = toset(var.cli_members)
  project  = var.project
  role     = "roles/datastore.user"
  member   = each.key
}

resource "google_pubsub_topic_iam_member" "cli_publish" {
  for_each = local.cli_topic_grants
  topic    = each.value.topic
  role     = "roles/pubsub.publisher"
  member   = each.value.member
}

resource "google_pubsub_subscription_iam_member" "cli_dead_letters" {
  for_each     = toset(var.cli_members)
  subscription = google_pubsub_subscription.dead_letters.id
  role         = "roles/pubsub.subscriber"
  member       = each.key
}

resource "google_project_iam_member" "cli_cluster" {
  for_each = toset(var.cli_members)
  project  = var.project
  role     = "roles/container.clusterViewer"
  member   = each.key
}
