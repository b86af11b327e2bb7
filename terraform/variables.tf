variable "project" {
  description = "Google Cloud project that hosts Rollerblade."
  type        = string
}

variable "region" {
  description = "Region of the bucket, the functions and Firestore."
  type        = string
  default     = "europe-west1"
}

variable "bucket_name" {
  description = "Name of the aBIDS bucket (datasets/ and derivatives/ live here)."
  type        = string
}

variable "collection_prefix" {
  description = "Prefix of every Firestore collection Rollerblade writes (several deployments can share a database)."
  type        = string
  default     = ""
}

variable "function_source_zip" {
  description = "Path of the zipped Cloud Functions source made by functions/package.sh (main.py, requirements.txt, rollerblade/)."
  type        = string
}

variable "max_delivery_attempts" {
  description = "Deliveries of one bucket notification before it goes to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub allows 5 to 100 delivery attempts."
  }
}

variable "function_memory" {
  description = "Memory of each index_object instance."
  type        = string
  default     = "1Gi"
}

variable "function_max_instances" {
  description = "Upper bound on concurrent index_object instances."
  type        = number
  default     = 20
}

variable "noncurrent_version_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept in the aBIDS bucket before it is deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "Keep noncurrent versions at least one day."
  }
}

variable "audit_bucket_access" {
  description = "Record Cloud Audit Logs Data Access entries (reads and writes of objects) for Cloud Storage in this project. Off by default: every object a job stages becomes a billed log entry."
  type        = bool
  default     = false
}

variable "cli_members" {
  description = "Principals who use the rollerblade CLI against this deployment, e.g. [\"group:lab@example.org\", \"user:ana@example.org\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.cli_members : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):", m))])
    error_message = "Each member is an IAM principal: user:, group:, serviceAccount:, domain:, principal: or principalSet:."
  }
}

# --- The cloud executor: GKE Autopilot, Artifact Registry, Workload Identity ---

variable "cluster_name" {
  description = "Name of the GKE Autopilot cluster that runs Analyses."
  type        = string
  default     = "rollerblade"
}

variable "release_channel" {
  description = "GKE release channel of the cluster (Autopilot clusters are always enrolled in one)."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE", "EXTENDED"], var.release_channel)
    error_message = "release_channel is one of RAPID, REGULAR, STABLE, EXTENDED."
  }
}

variable "cluster_deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster (set false, apply, then destroy to tear it down)."
  type        = bool
  default     = true
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the cluster's public control-plane endpoint (e.g. the lab's egress range, for kubectl and the CLI's status)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0)) && n.cidr_block != "0.0.0.0/0"])
    error_message = "Each entry is a valid CIDR block, and not 0.0.0.0/0."
  }
}

variable "cluster_google_cloud_access" {
  description = "Let Google Cloud's own public addresses (Cloud Run functions, Cloud Build) reach the control plane. The functions submit Jobs from there; without it they need a VPC connector."
  type        = bool
  default     = true
}

variable "cluster_ip_ranges" {
  description = "IP ranges of the cluster's subnetwork: nodes (primary), pods and services (secondary)."
  type = object({
    nodes    = string
    pods     = string
    services = string
  })
  default = {
    nodes    = "10.10.0.0/20"
    pods     = "10.64.0.0/14"
    services = "10.10.16.0/20"
  }
}

variable "jobs_namespace" {
  description = "Kubernetes namespace of the Analysis Jobs and the job watcher."
  type        = string
  default     = "rollerblade-jobs"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.jobs_namespace))
    error_message = "jobs_namespace must be a DNS label (lowercase letters, digits, '-')."
  }
}

variable "max_jobs" {
  description = "Jobs in flight on the cluster at once, over every Analysis; queued work waits in Pub/Sub."
  type        = number
  default     = 50

  validation {
    condition     = var.max_jobs >= 1
    error_message = "max_jobs is at least 1."
  }
}

variable "stager_image" {
  description = "Image (by digest) of the stage-in/store-out containers of each Analysis pod: Rollerblade's image as Cloud Build pushed it. Empty: the functions use the setting's default."
  type        = string
  default     = ""
}

variable "artifact_registry_repository" {
  description = "Name of the Artifact Registry Docker repository for Rollerblade's and the Analyses' images."
  type        = string
  default     = "rollerblade"
}

variable "artifact_immutable_tags" {
  description = "Refuse to move a tag to another image: a tag names one image forever (push by version or commit, never `latest`)."
  type        = bool
  default     = true
}

variable "artifact_keep_versions" {
  description = "Most recent versions of each image that the cleanup policy always keeps."
  type        = number
  default     = 10
}

variable "artifact_untagged_days" {
  description = "Days after which an untagged image version (not among the most recent ones) is deleted. Tagged versions are kept: job records name them."
  type        = number
  default     = 30
}

# --- The HTTP API on Cloud Run (api.tf) ---

variable "api_image" {
  description = "Rollerblade's image by digest (REGISTRY/rollerblade@sha256:...) for the HTTP API service on Cloud Run: Cloud Build passes the one it pushed. Empty: no API service."
  type        = string
  default     = ""

  validation {
    condition     = var.api_image == "" || can(regex("@sha256:[0-9a-f]{64}$", var.api_image))
    error_message = "api_image names an image by digest (...@sha256:<64 hex>), never by a tag that can move."
  }
}

variable "api_invoker_members" {
  description = "Principals who may call the HTTP API (roles/run.invoker on its Cloud Run service), e.g. [\"group:lab@example.org\", \"serviceAccount:ci@P.iam.gserviceaccount.com\"]. What each may do is Rollerblade's grants: map a person to a user with `rollerblade user add NAME --email`."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.api_invoker_members : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):", m))])
    error_message = "Each member is an IAM principal: user:, group:, serviceAccount:, domain:, principal: or principalSet: (never allUsers or allAuthenticatedUsers)."
  }
}

variable "api_audience" {
  description = "Audience of the Google identity tokens the API accepts (ROLLERBLADE_GOOGLE_AUDIENCE), also declared as the service's custom audience. Empty: the service's deterministic URL, https://rollerblade-api-PROJECT_NUMBER.REGION.run.app."
  type        = string
  default     = ""
}

variable "api_ingress" {
  description = "Where requests to the API may come from (Cloud Run ingress). Every request still needs the identity of an api_invoker_members principal."
  type        = string
  default     = "INGRESS_TRAFFIC_ALL"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.api_ingress)
    error_message = "api_ingress is INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

variable "api_max_instances" {
  description = "Upper bound on API instances (each serves api_concurrency requests at once)."
  type        = number
  default     = 5

  validation {
    condition     = var.api_max_instances >= 1 && var.api_max_instances <= 100
    error_message = "api_max_instances is between 1 and 100."
  }
}

variable "api_concurrency" {
  description = "Requests one API instance serves at once (they wait on Firestore and Cloud Storage, not on CPU). The routes run in the server's pool of 40 threads: more would only queue."
  type        = number
  default     = 20

  validation {
    condition     = var.api_concurrency >= 1 && var.api_concurrency <= 40
    error_message = "api_concurrency is between 1 and 40 (the server's thread pool)."
  }
}

variable "api_memory" {
  description = "Memory of each API instance (with 1 vCPU)."
  type        = string
  default     = "1Gi"
}
