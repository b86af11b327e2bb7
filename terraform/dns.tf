# Google APIs through private.googleapis.com, for the cluster's VPC (gke.tf).
#
# The NetworkPolicies of deploy/k8s/networkpolicy.yaml let the Analysis pods and the
# watcher reach the Google APIs only at private.googleapis.com, 199.36.153.8/30 on 443.
# Pods resolve names through the VPC's DNS, so a private Cloud DNS zone for
# googleapis.com, visible to this network only, points every *.googleapis.com name
# (storage, pubsub, firestore, iamcredentials, ...) at that range, as Google's "Private
# Google Access" network configuration sets out for the private.googleapis.com domain:
# A records for private.googleapis.com with its four addresses, and a CNAME from
# *.googleapis.com to it. Without the zone, storage.googleapis.com resolves to public
# Google addresses the policies do not open, and stage-in and store-out fail.
#
# Routing: traffic to 199.36.153.8/30 leaves the VPC by the default internet gateway.
# The network keeps the default route (0.0.0.0/0 to the default internet gateway) that
# Google creates with it (delete_default_routes_on_create = false, gke.tf); the nodes
# have no external addresses and there is no Cloud NAT, so that route carries only
# Private Google Access traffic. A network without it would need a custom route for
# 199.36.153.8/30 to the default internet gateway. Private Google Access itself is on
# the subnetwork (private_ip_google_access). No firewall rule is needed for egress:
# the implied allow-egress rule of the VPC covers it.
#
# The zone applies to the whole network, nodes included: their own calls to Google APIs
# (logging, monitoring, GKE) go to private.googleapis.com too, which serves them.
# Artifact Registry (REGION-docker.pkg.dev) is not under googleapis.com and is reached
# as before, through Private Google Access on its public addresses.

locals {
  # private.googleapis.com: 199.36.153.8/30
  private_googleapis_addresses = ["199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11"]
}

resource "google_dns_managed_zone" "googleapis" {
  name        = "rollerblade-googleapis"
  dns_name    = "googleapis.com."
  description = "Google APIs through private.googleapis.com for the Rollerblade VPC (Private Google Access)"
  visibility  = "private"

  private_visibility_config {
    networks {
      network_url = google_compute_network.jobs.id
    }
  }

  labels = {
    app = "rollerblade"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_dns_record_set" "private_googleapis" {
  managed_zone = google_dns_managed_zone.googleapis.name
  name         = "private.${google_dns_managed_zone.googleapis.dns_name}"
  type         = "A"
  ttl          = 300
  rrdatas      = local.private_googleapis_addresses
}

resource "google_dns_record_set" "googleapis_wildcard" {
  managed_zone = google_dns_managed_zone.googleapis.name
  name         = "*.${google_dns_managed_zone.googleapis.dns_name}"
  type         = "CNAME"
  ttl          = 300
  rrdatas      = ["private.${google_dns_managed_zone.googleapis.dns_name}"]
}
