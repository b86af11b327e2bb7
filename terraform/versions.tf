terraform {
  # mock_provider in terraform/tests needs 1.7 (state_key in tests/api.tftest.hcl: 1.9).
  required_version = ">= 1.7"

  # State lives in a Cloud Storage bucket made once per project, outside this configuration
  # (it must exist before `init`): partial configuration, the bucket is given at init:
  #   terraform init -backend-config="bucket=PROJECT-tfstate" -backend-config="prefix=rollerblade"
  # Offline checks run `terraform init -backend=false`.
  backend "gcs" {}

  required_providers {
    google = {
      source = "hashicorp/google"
      # Bounded to the major version the offline checks validate against (the stand-in in
      # terraform/offline serves the provider 8.7.0 schema): a new major version may rename
      # or drop arguments, so moving to it is a reviewed change.
      version = ">= 8.0, < 9.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
