# The cloud executor's cluster: GKE Autopilot, which provisions nodes for the queued Jobs
# and removes them when idle, so a lab pays for compute only while Analyses run.
#
# - Private nodes: no node has an external address, and there is no Cloud NAT, so pods
#   reach nothing on the internet; Private Google Access on the subnetwork lets the nodes
#   pull images from Artifact Registry and the stage-in/store-out containers reach Cloud
#   Storage, through private.googleapis.com (the private googleapis.com zone, dns.tf).
# - The control plane keeps its public endpoint, open only to master_authorized_networks
#   and, with cluster_google_cloud_access, to Google Cloud's own addresses, from which
#   the job_events function submits Jobs (it has no VPC connector). Every caller still
#   needs IAM (roles/container.clusterViewer) and Kubernetes RBAC in the jobs namespace.
# - Workload Identity is always on in Autopilot; the pool is stated below so that the
#   bindings in workload_identity.tf name it.
# - Namespace, Kubernetes service accounts and RBAC are applied from deploy/k8s/ by Cloud
#   Build, not here.

locals {
  workload_pool = "${var.project}.svc.id.goog"
}

resource "google_compute_network" "jobs" {
  name                    = "rollerblade"
  auto_create_subnetworks = false
  # Keep the default route to the default internet gateway: with no external address
  # and no Cloud NAT it carries only Private Google Access traffic, which includes
  # private.googleapis.com (199.36.153.8/30, dns.tf).
  delete_default_routes_on_create = false
  depends_on                      = [google_project_service.enabled]
}

resource "google_compute_subnetwork" "jobs" {
  name                     = "rollerblade-${var.region}"
  region                   = var.region
  network                  = google_compute_network.jobs.id
  ip_cidr_range            = var.cluster_ip_ranges.nodes
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.cluster_ip_ranges.pods
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.cluster_ip_ranges.services
  }

  # VPC flow logs, sampled: what the nodes talk to, at a fraction of the full cost.
  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.2
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Ingress to the nodes: nothing but what GKE itself allows (its managed rules, priority
# 1000, let the control plane and the pods reach each other). This states the implied
# deny-all explicitly, at the lowest priority, so that it is reviewed with the rest.
resource "google_compute_firewall" "deny_ingress" {
  name      = "rollerblade-deny-ingress"
  network   = google_compute_network.jobs.id
  direction = "INGRESS"
  priority  = 65534
  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]
}

# The nodes' own identity (kubelet: image pulls, logs, metrics), instead of the Compute
# Engine default service account and its Editor role. Pods never use it: each Analysis pod
# runs as its Kubernetes service account, mapped by Workload Identity.
resource "google_service_account" "gke_nodes" {
  account_id   = "rollerblade-gke-nodes"
  display_name = "Nodes of the Rollerblade GKE Autopilot cluster"
  depends_on   = [google_project_service.enabled]
}

resource "google_project_iam_member" "gke_nodes" {
  project = var.project
  role    = "roles/container.defaultNodeServiceAccount"
  member  = "serviceAccount:${google_service_account.gke_nodes.email}"
}

resource "google_container_cluster" "jobs" {
  # checkov:skip=CKV_GCP_12: Autopilot always runs GKE Dataplane V2, which enforces NetworkPolicy; the network_policy block is for Standard clusters
  # checkov:skip=CKV_GCP_65: Google Groups for RBAC needs a gke-security-groups group in a Workspace/Cloud Identity domain, which a lab may not have; RBAC binds Google service accounts and users directly (deploy/k8s/)
  # checkov:skip=CKV_GCP_66: Binary Authorization is not enabled: images come by digest from this project's Artifact Registry repository, which the functions' build account is barred from (functions.tf) and Cloud Build writes; a policy would add an attestor chain beyond this deployment
  # checkov:skip=CKV_GCP_69: Autopilot always runs the GKE metadata server (Workload Identity cannot be turned off); the node_config setting checked is for Standard node pools
  # checkov:skip=CKV_GCP_61: intranode visibility would route same-node pod-to-pod traffic through the VPC for flow logs; Analysis pods talk to nothing (NetworkPolicy), and the subnetwork's flow logs cover node traffic
  name                = var.cluster_name
  location            = var.region # Autopilot clusters are regional
  enable_autopilot    = true
  deletion_protection = var.cluster_deletion_protection
  network             = google_compute_network.jobs.id
  subnetwork          = google_compute_subnetwork.jobs.id

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = var.cluster_google_cloud_access
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  release_channel {
    channel = var.release_channel
  }

  # On by default in Autopilot (and cannot be turned off); stated for the bindings.
  workload_identity_config {
    workload_pool = local.workload_pool
  }

  # No client certificates: callers authenticate with Google identities only.
  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  # Autopilot's node identity.
  cluster_autoscaling {
    auto_provisioning_defaults {
      service_account = google_service_account.gke_nodes.email
      oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    }
  }

  resource_labels = {
    app = "rollerblade"
  }

  depends_on = [google_project_iam_member.gke_nodes]
}
