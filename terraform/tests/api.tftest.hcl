# Offline plan checks of the HTTP API on Cloud Run (api.tf) and of the Firestore security
# rules and audit indexes (firestore.tf), with a mocked google provider.

mock_provider "google" {
  mock_data "google_project" {
    defaults = {
      number = "123456789"
    }
  }
  mock_data "google_storage_project_service_account" {
    defaults = {
      email_address = "service-123456789@gs-project-accounts.iam.gserviceaccount.com"
    }
  }
  mock_resource "google_service_account" {
    defaults = {
      email = "rollerblade-api@rollerblade-test.iam.gserviceaccount.com"
    }
  }
  mock_resource "google_cloud_run_v2_service" {
    defaults = {
      urls = ["https://rollerblade-api-123456789.europe-west1.run.app", "https://rollerblade-api-abcdefghij-ew.a.run.app"]
    }
  }
}

variables {
  project             = "rollerblade-test"
  bucket_name         = "rollerblade-test-abids"
  function_source_zip = "tests/fixtures/functions.zip"
}

run "no_api_service_without_an_image" {
  command = plan

  assert {
    condition     = length(google_cloud_run_v2_service.api) == 0 && length(google_cloud_run_v2_service_iam_member.api_invokers) == 0
    error_message = "without api_image there is no API service and nobody to invoke it"
  }
  assert {
    condition     = output.api_url == null
    error_message = "no api_url without a service"
  }
}

run "the_api_runs_rollerblades_image_as_the_functions_configure_it" {
  command = apply # mocked: the service account's email and the project number get stand-in values
  variables {
    api_image           = "europe-west1-docker.pkg.dev/rollerblade-test/rollerblade/rollerblade@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    api_invoker_members = ["group:lab@example.org", "serviceAccount:ci@rollerblade-test.iam.gserviceaccount.com"]
    collection_prefix   = "lab_"
  }

  assert {
    condition     = google_cloud_run_v2_service.api[0].template[0].containers[0].image == var.api_image
    error_message = "the service runs the image Cloud Build pushed, by digest"
  }
  assert {
    condition     = concat(google_cloud_run_v2_service.api[0].template[0].containers[0].command, google_cloud_run_v2_service.api[0].template[0].containers[0].args) == tolist(["rollerblade", "serve", "--http", "0.0.0.0:8080", "--no-events"])
    error_message = "the container serves the HTTP API only, on Cloud Run's port"
  }
  assert {
    condition     = google_cloud_run_v2_service.api[0].template[0].containers[0].ports[0].container_port == 8080
    error_message = "Cloud Run sends requests to port 8080"
  }
  assert {
    condition = { for e in google_cloud_run_v2_service.api[0].template[0].containers[0].env : e.name => e.value } == {
      ROLLERBLADE_BACKEND           = "gcp"
      ROLLERBLADE_GCP_PROJECT       = "rollerblade-test"
      ROLLERBLADE_BUCKET            = "rollerblade-test-abids"
      ROLLERBLADE_COLLECTION_PREFIX = "lab_"
      ROLLERBLADE_TOPIC_PREFIX      = "rollerblade-"
      ROLLERBLADE_EXECUTOR          = "gke"
      ROLLERBLADE_MAX_JOBS          = "50"
      ROLLERBLADE_GOOGLE_AUDIENCE   = "https://rollerblade-api-123456789.europe-west1.run.app"
    }
    error_message = "the API gets the functions' settings and its own URL as the Google audience"
  }
  assert {
    condition     = output.api_url == "https://rollerblade-api-123456789.europe-west1.run.app" && output.api_audience == output.api_url
    error_message = "api_url is the service's deterministic URL, which is the audience"
  }
  assert {
    condition     = length(google_cloud_run_v2_service.api[0].custom_audiences) == 0
    error_message = "no custom audience unless one is asked for"
  }
  assert {
    condition     = google_cloud_run_v2_service.api[0].template[0].service_account == google_service_account.api.email
    error_message = "the API runs as its own service account"
  }
  assert {
    condition     = google_cloud_run_v2_service.api[0].template[0].max_instance_request_concurrency == 20 && google_cloud_run_v2_service.api[0].template[0].scaling[0].max_instance_count == 5 && google_cloud_run_v2_service.api[0].template[0].scaling[0].min_instance_count == 0
    error_message = "bounded concurrency and instances, scaled to zero when idle"
  }
  assert {
    condition     = google_cloud_run_v2_service.api[0].template[0].containers[0].resources[0].limits["memory"] == "1Gi" && google_cloud_run_v2_service.api[0].template[0].containers[0].resources[0].limits["cpu"] == "1"
    error_message = "one vCPU and api_memory per instance"
  }
  assert {
    condition     = google_cloud_run_v2_service.api[0].template[0].containers[0].startup_probe[0].http_get[0].path == "/health"
    error_message = "the revision is ready when /health answers"
  }
}

run "a_service_cloud_run_gave_another_url_is_flagged" {
  command   = apply
  state_key = "another_url" # a service of its own, made with the overridden URLs
  variables {
    api_image = "europe-west1-docker.pkg.dev/rollerblade-test/rollerblade/rollerblade@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  }
  override_resource {
    target = google_cloud_run_v2_service.api
    values = {
      urls = ["https://rollerblade-api-abcdefghij-ew.a.run.app"]
    }
  }
  expect_failures = [check.api_url_is_the_services]
}

run "only_the_invoker_members_reach_the_api" {
  command = plan
  variables {
    api_image           = "europe-west1-docker.pkg.dev/rollerblade-test/rollerblade/rollerblade@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    api_invoker_members = ["group:lab@example.org", "serviceAccount:ci@rollerblade-test.iam.gserviceaccount.com"]
  }

  assert {
    condition     = google_cloud_run_v2_service.api[0].invoker_iam_disabled == false
    error_message = "Cloud Run checks every request's identity (the invoker check is never disabled)"
  }
  assert {
    condition     = google_cloud_run_v2_service.api[0].ingress == "INGRESS_TRAFFIC_ALL"
    error_message = "reachable from outside Google Cloud by default, behind IAM"
  }
  assert {
    condition     = toset([for b in google_cloud_run_v2_service_iam_member.api_invokers : b.member]) == toset(var.api_invoker_members)
    error_message = "the invokers are exactly api_invoker_members"
  }
  assert {
    condition     = alltrue([for b in google_cloud_run_v2_service_iam_member.api_invokers : b.role == "roles/run.invoker" && b.name == "rollerblade-api"])
    error_message = "they get roles/run.invoker on the API service, nothing more"
  }
}

run "the_api_identity_has_least_privilege" {
  command = plan

  assert {
    condition     = google_project_iam_member.api_uses_firestore.role == "roles/datastore.user"
    error_message = "the API reads and writes Firestore (index, access store, audit log)"
  }
  assert {
    condition = (
      google_storage_bucket_iam_member.api_reads_bucket.role == "roles/storage.objectViewer"
      && strcontains(google_storage_bucket_iam_member.api_reads_bucket.condition[0].expression, "/objects/datasets/")
      && strcontains(google_storage_bucket_iam_member.api_reads_bucket.condition[0].expression, "/objects/derivatives/")
      && strcontains(google_storage_bucket_iam_member.api_reads_bucket.condition[0].expression, "/objects/logs/")
      && !strcontains(google_storage_bucket_iam_member.api_reads_bucket.condition[0].expression, "/objects/jobs/")
    )
    error_message = "the API only reads the bucket: data, derivatives and logs"
  }
  assert {
    condition     = google_pubsub_topic_iam_member.api_publishes_job_queue.role == "roles/pubsub.publisher" && google_pubsub_topic_iam_member.api_publishes_job_queue.topic == google_pubsub_topic.pipeline["job-queue"].id
    error_message = "the API publishes queued jobs on the job-queue topic only"
  }
}

run "a_custom_audience_is_declared_to_cloud_run_too" {
  command = plan
  variables {
    api_image    = "europe-west1-docker.pkg.dev/rollerblade-test/rollerblade/rollerblade@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    api_audience = "https://api.lab.example.org"
  }

  assert {
    condition     = google_cloud_run_v2_service.api[0].custom_audiences == tolist(["https://api.lab.example.org"])
    error_message = "Cloud Run accepts tokens minted for the custom audience"
  }
  assert {
    condition     = { for e in google_cloud_run_v2_service.api[0].template[0].containers[0].env : e.name => e.value }["ROLLERBLADE_GOOGLE_AUDIENCE"] == "https://api.lab.example.org"
    error_message = "and the app verifies that audience"
  }
}

run "rejects_public_invokers" {
  command = plan
  variables {
    api_invoker_members = ["allUsers"]
  }
  expect_failures = [var.api_invoker_members]
}

run "rejects_an_api_image_by_tag" {
  command = plan
  variables {
    api_image = "europe-west1-docker.pkg.dev/rollerblade-test/rollerblade/rollerblade:latest"
  }
  expect_failures = [var.api_image]
}

run "the_committed_firestore_rules_are_released" {
  command = apply # mocked: the ruleset's generated name gets a stand-in value

  assert {
    condition     = google_firebaserules_ruleset.firestore.source[0].files[0].content == file("../firestore.rules")
    error_message = "the ruleset is firestore.rules as committed"
  }
  assert {
    condition     = google_firebaserules_release.firestore.name == "cloud.firestore"
    error_message = "the release is the one the (default) database enforces"
  }
  assert {
    condition     = google_firebaserules_release.firestore.ruleset_name == "projects/rollerblade-test/rulesets/${google_firebaserules_ruleset.firestore.name}"
    error_message = "the release points at the committed ruleset"
  }
  assert {
    condition     = contains(keys(google_project_service.enabled), "firebaserules.googleapis.com")
    error_message = "the Firebase Rules API is enabled"
  }
}

run "the_audit_log_queries_have_their_indexes" {
  command = plan
  variables {
    collection_prefix = "lab_"
  }

  assert {
    condition = toset([for i in google_firestore_index.composite : join(",", [for f in i.fields : "${f.field_path}:${f.order}"]) if i.collection == "lab_audit"]) == toset([
      "actor:ASCENDING,time:DESCENDING",
      "kind:ASCENDING,target:ASCENDING,time:DESCENDING",
      "actor:ASCENDING,kind:ASCENDING,target:ASCENDING,time:DESCENDING",
    ])
    error_message = "the audit log's filtered, newest-first queries have their composite indexes, under the collection prefix"
  }
}
