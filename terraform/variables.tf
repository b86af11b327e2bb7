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
