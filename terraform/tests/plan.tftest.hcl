# Offline plan checks with a mocked google provider (terraform test).

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
}

variables {
  project             = "rollerblade-test"
  bucket_name         = "rollerblade-test-abids"
  function_source_zip = "tests/fixtures/functions.zip"
}

run "bucket_is_private_and_notifies" {
  command = plan

  assert {
    condition     = google_storage_bucket.abids.public_access_prevention == "enforced"
    error_message = "the aBIDS bucket must not be public"
  }
  assert {
    condition     = toset(google_storage_notification.objects.event_types) == toset(["OBJECT_FINALIZE", "OBJECT_DELETE", "OBJECT_ARCHIVE"])
    error_message = "the bucket must notify object creation, deletion and archiving (a versioned bucket's deletes)"
  }
  assert {
    condition     = google_storage_notification.objects.payload_format == "JSON_API_V1"
    error_message = "index_object decodes JSON_API_V1 notifications"
  }
}

run "functions_publish_only_rerun_batches" {
  command = plan

  assert {
    condition     = google_pubsub_topic_iam_member.functions_publish_reruns.role == "roles/pubsub.publisher"
    error_message = "the rerun function must be able to publish its batches"
  }
  assert {
    condition     = google_cloudfunctions2_function.rerun.service_config[0].environment_variables["ROLLERBLADE_TOPIC_PREFIX"] == "rollerblade-"
    error_message = "the functions must publish to the deployment's topics"
  }
}

run "unqueried_fields_are_exempt_from_indexing" {
  command = plan

  assert {
    condition     = contains(keys(google_firestore_field.exempt), "records-generation") && contains(keys(google_firestore_field.exempt), "records-doc")
    error_message = "ever-increasing generations and record JSON must not be indexed"
  }
}

run "notifications_are_dead_lettered" {
  command = plan

  assert {
    condition     = google_pubsub_subscription.index_object.dead_letter_policy[0].max_delivery_attempts == 10
    error_message = "failing notifications must reach the dead-letter topic"
  }
}

run "functions_are_configured_for_gcp" {
  command = plan

  assert {
    condition     = google_cloudfunctions2_function.index_object.build_config[0].entry_point == "index_object"
    error_message = "the bucket notification function is index_object"
  }
  assert {
    condition     = google_cloudfunctions2_function.index_object.service_config[0].environment_variables["ROLLERBLADE_BACKEND"] == "gcp"
    error_message = "functions must use the gcp backend"
  }
  assert {
    condition     = google_project_iam_member.functions_use_firestore.role == "roles/datastore.user"
    error_message = "functions only need datastore.user on the project"
  }
}

run "rejects_too_few_delivery_attempts" {
  command = plan
  variables {
    max_delivery_attempts = 2
  }
  expect_failures = [var.max_delivery_attempts]
}

run "every_pipeline_event_has_a_topic_a_function_and_dead_letters" {
  command = plan

  assert {
    condition     = toset(keys(google_pubsub_topic.pipeline)) == toset(["scans", "job-results", "job-queue", "jobs"])
    error_message = "scan.indexed, job results, the job queue and job ends each need a topic"
  }
  assert {
    condition     = alltrue([for s in google_pubsub_subscription.pipeline : s.dead_letter_policy[0].max_delivery_attempts == var.max_delivery_attempts])
    error_message = "pipeline subscriptions dead-letter poison messages"
  }
  assert {
    condition     = google_cloudfunctions2_function.pipeline["rule_engine"].build_config[0].entry_point == "rule_engine"
    error_message = "the rule engine function runs functions/main.py:rule_engine"
  }
}

# --- The cloud executor (issue 9) ---

run "cluster_is_autopilot_with_private_nodes" {
  command = plan

  assert {
    condition     = google_container_cluster.jobs.enable_autopilot == true
    error_message = "the cluster must be GKE Autopilot"
  }
  assert {
    condition     = google_container_cluster.jobs.private_cluster_config[0].enable_private_nodes == true && google_container_cluster.jobs.private_cluster_config[0].enable_private_endpoint == false
    error_message = "nodes must be private; the endpoint stays public behind authorized networks"
  }
  assert {
    condition     = google_container_cluster.jobs.release_channel[0].channel == "REGULAR"
    error_message = "the cluster follows the REGULAR release channel by default"
  }
  assert {
    condition     = google_container_cluster.jobs.workload_identity_config[0].workload_pool == "rollerblade-test.svc.id.goog"
    error_message = "Workload Identity uses the project's pool"
  }
  assert {
    condition     = google_container_cluster.jobs.deletion_protection == true
    error_message = "the cluster is protected from deletion by default"
  }
  assert {
    condition     = google_container_cluster.jobs.master_auth[0].client_certificate_config[0].issue_client_certificate == false
    error_message = "no client certificates: Google identities only"
  }
  assert {
    condition     = google_compute_subnetwork.jobs.private_ip_google_access == true
    error_message = "private nodes reach Artifact Registry and Cloud Storage through Private Google Access"
  }
}

run "the_vpc_resolves_google_apis_to_private_googleapis" {
  command = apply # mocked: the zone's network binding compares the network's id, known after apply

  assert {
    condition     = google_dns_managed_zone.googleapis.dns_name == "googleapis.com." && google_dns_managed_zone.googleapis.visibility == "private"
    error_message = "a private zone for googleapis.com., not a public one"
  }
  assert {
    condition     = [for n in google_dns_managed_zone.googleapis.private_visibility_config[0].networks : n.network_url] == [google_compute_network.jobs.id]
    error_message = "the zone is bound to the cluster's VPC, and to it only"
  }
  assert {
    condition     = google_dns_record_set.private_googleapis.name == "private.googleapis.com." && google_dns_record_set.private_googleapis.type == "A" && google_dns_record_set.private_googleapis.managed_zone == google_dns_managed_zone.googleapis.name
    error_message = "the zone holds an A record for private.googleapis.com."
  }
  assert {
    condition     = toset(google_dns_record_set.private_googleapis.rrdatas) == toset(["199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11"])
    error_message = "private.googleapis.com resolves to 199.36.153.8/30, the range the NetworkPolicies open"
  }
  assert {
    condition     = google_dns_record_set.googleapis_wildcard.name == "*.googleapis.com." && google_dns_record_set.googleapis_wildcard.type == "CNAME" && google_dns_record_set.googleapis_wildcard.rrdatas == tolist(["private.googleapis.com."]) && google_dns_record_set.googleapis_wildcard.managed_zone == google_dns_managed_zone.googleapis.name
    error_message = "every *.googleapis.com name is a CNAME to private.googleapis.com."
  }
  assert {
    condition     = google_compute_network.jobs.delete_default_routes_on_create == false && google_compute_subnetwork.jobs.private_ip_google_access == true
    error_message = "199.36.153.8/30 is routed by the default route to the internet gateway, with Private Google Access on the subnetwork"
  }
}

run "only_authorized_networks_reach_the_control_plane" {
  command = plan
  variables {
    master_authorized_networks = [{ cidr_block = "192.0.2.0/24", display_name = "lab" }]
  }

  assert {
    condition     = [for b in google_container_cluster.jobs.master_authorized_networks_config[0].cidr_blocks : b.cidr_block] == ["192.0.2.0/24"]
    error_message = "master_authorized_networks become the cluster's authorized CIDR blocks"
  }
  assert {
    condition     = google_container_cluster.jobs.master_authorized_networks_config[0].gcp_public_cidrs_access_enabled == true
    error_message = "the functions submit Jobs from Google Cloud's addresses"
  }
}

run "rejects_an_open_control_plane" {
  command = plan
  variables {
    master_authorized_networks = [{ cidr_block = "0.0.0.0/0", display_name = "anyone" }]
  }
  expect_failures = [var.master_authorized_networks]
}

run "workload_identity_binds_the_two_kubernetes_service_accounts" {
  command = plan

  assert {
    condition     = google_service_account_iam_member.job_workload_identity.member == "serviceAccount:rollerblade-test.svc.id.goog[rollerblade-jobs/rollerblade-job]"
    error_message = "KSA rollerblade-job in rollerblade-jobs impersonates the job service account"
  }
  assert {
    condition     = google_service_account_iam_member.watcher_workload_identity.member == "serviceAccount:rollerblade-test.svc.id.goog[rollerblade-jobs/rollerblade-watcher]"
    error_message = "KSA rollerblade-watcher in rollerblade-jobs impersonates the watcher service account"
  }
  assert {
    condition     = google_service_account_iam_member.job_workload_identity.role == "roles/iam.workloadIdentityUser" && google_service_account_iam_member.watcher_workload_identity.role == "roles/iam.workloadIdentityUser"
    error_message = "Workload Identity bindings use roles/iam.workloadIdentityUser"
  }
}

run "workload_identity_follows_the_jobs_namespace" {
  command = plan
  variables {
    jobs_namespace = "lab-jobs"
  }

  assert {
    condition     = google_service_account_iam_member.job_workload_identity.member == "serviceAccount:rollerblade-test.svc.id.goog[lab-jobs/rollerblade-job]"
    error_message = "the binding names the configured namespace"
  }
}

run "job_pods_read_inputs_and_write_only_staging_and_logs" {
  command = plan

  assert {
    condition     = strcontains(google_storage_bucket_iam_member.job_reads_inputs.condition[0].expression, "projects/_/buckets/rollerblade-test-abids/objects/datasets/")
    error_message = "job pods read datasets/"
  }
  assert {
    condition     = google_storage_bucket_iam_member.job_reads_inputs.role == "roles/storage.objectViewer"
    error_message = "job pods only read their inputs"
  }
  assert {
    condition = (
      strcontains(google_storage_bucket_iam_member.job_writes_outputs.condition[0].expression, "/objects/jobs/")
      && strcontains(google_storage_bucket_iam_member.job_writes_outputs.condition[0].expression, "/objects/logs/")
      && !strcontains(google_storage_bucket_iam_member.job_writes_outputs.condition[0].expression, "derivatives/")
      && !strcontains(google_storage_bucket_iam_member.job_writes_outputs.condition[0].expression, "datasets/")
    )
    error_message = "job pods write under jobs/ and logs/ only"
  }
  assert {
    condition     = google_pubsub_topic_iam_member.watcher_publishes_jobs.role == "roles/pubsub.publisher"
    error_message = "the watcher publishes job events"
  }
  assert {
    condition     = google_project_iam_member.functions_reach_cluster.role == "roles/container.clusterViewer"
    error_message = "IAM lets the functions reach the cluster API, no more (RBAC does the rest)"
  }
  assert {
    condition     = google_artifact_registry_repository_iam_member.nodes_pull.role == "roles/artifactregistry.reader"
    error_message = "the nodes pull images from the repository"
  }
}

run "a_fresh_project_gets_its_apis_state_and_lifecycle" {
  command = plan

  assert {
    condition     = alltrue([for s in ["container.googleapis.com", "artifactregistry.googleapis.com", "cloudfunctions.googleapis.com", "cloudbuild.googleapis.com", "run.googleapis.com", "pubsub.googleapis.com", "firestore.googleapis.com", "storage.googleapis.com", "iam.googleapis.com", "logging.googleapis.com", "compute.googleapis.com", "dns.googleapis.com"] : contains(keys(google_project_service.enabled), s)])
    error_message = "every API the configuration uses is enabled"
  }
  assert {
    condition     = alltrue([for s in google_project_service.enabled : s.disable_on_destroy == false])
    error_message = "destroying the deployment must not disable APIs others may use"
  }
  assert {
    condition     = google_storage_bucket.abids.lifecycle_rule[0].condition[0].days_since_noncurrent_time == 30 && google_storage_bucket.abids.lifecycle_rule[0].action[0].type == "Delete"
    error_message = "noncurrent object versions are deleted after noncurrent_version_days"
  }
  assert {
    condition     = google_pubsub_subscription.reruns.retry_policy[0].minimum_backoff == "10s"
    error_message = "the reruns subscription retries with backoff"
  }
  assert {
    condition     = alltrue([for s in concat([google_pubsub_subscription.index_object, google_pubsub_subscription.reruns], values(google_pubsub_subscription.pipeline)) : length(s.retry_policy) == 1])
    error_message = "every push subscription has a retry policy"
  }
  assert {
    condition     = google_artifact_registry_repository.images.docker_config[0].immutable_tags == true
    error_message = "image tags are immutable"
  }
  assert {
    condition     = output.artifact_registry == "europe-west1-docker.pkg.dev/rollerblade-test/rollerblade"
    error_message = "artifact_registry is REGION-docker.pkg.dev/PROJECT/REPO"
  }
  assert {
    condition     = output.jobs_namespace == "rollerblade-jobs"
    error_message = "jobs_namespace is output for deploy/k8s"
  }
}

run "job_events_submits_to_the_cluster" {
  command = apply # mocked: computed values (endpoint, CA, ids) get stand-in values

  assert {
    condition     = google_cloudfunctions2_function.pipeline["job_events"].service_config[0].environment_variables["ROLLERBLADE_EXECUTOR"] == "gke"
    error_message = "the functions run Analyses on GKE"
  }
  assert {
    condition     = google_cloudfunctions2_function.pipeline["job_events"].service_config[0].environment_variables["ROLLERBLADE_GKE_NAMESPACE"] == "rollerblade-jobs"
    error_message = "job_events submits into the jobs namespace"
  }
  assert {
    condition     = google_cloudfunctions2_function.pipeline["job_events"].service_config[0].environment_variables["ROLLERBLADE_GKE_ENDPOINT"] == "https://${google_container_cluster.jobs.endpoint}"
    error_message = "job_events reaches the cluster's endpoint"
  }
  assert {
    condition     = google_cloudfunctions2_function.pipeline["job_events"].service_config[0].environment_variables["ROLLERBLADE_GKE_CA_CERT"] == google_container_cluster.jobs.master_auth[0].cluster_ca_certificate
    error_message = "job_events trusts the cluster's CA"
  }
  assert {
    condition     = google_cloudfunctions2_function.pipeline["job_events"].service_config[0].environment_variables["ROLLERBLADE_MAX_JOBS"] == "50"
    error_message = "max_jobs caps the jobs in flight"
  }
  assert {
    condition     = !contains(keys(google_cloudfunctions2_function.pipeline["rule_engine"].service_config[0].environment_variables), "ROLLERBLADE_GKE_ENDPOINT")
    error_message = "only job_events talks to the cluster"
  }
  assert {
    condition     = !contains(keys(google_cloudfunctions2_function.pipeline["job_events"].service_config[0].environment_variables), "ROLLERBLADE_STAGER_IMAGE")
    error_message = "no stager image unless one is given"
  }
  assert {
    condition     = alltrue([for f in concat([google_cloudfunctions2_function.index_object, google_cloudfunctions2_function.rerun], values(google_cloudfunctions2_function.pipeline)) : f.build_config[0].service_account == google_service_account.functions_build.id])
    error_message = "every function is built by the dedicated build service account"
  }
}

run "cli_members_get_the_cli_roles" {
  command = plan
  variables {
    cli_members  = ["group:lab@example.org"]
    stager_image = "europe-west1-docker.pkg.dev/rollerblade-test/rollerblade/rollerblade@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  }

  assert {
    condition     = google_storage_bucket_iam_member.cli_bucket["group:lab@example.org"].role == "roles/storage.objectUser"
    error_message = "CLI users read and write the bucket"
  }
  assert {
    condition     = google_project_iam_member.cli_firestore["group:lab@example.org"].role == "roles/datastore.user"
    error_message = "CLI users query the index"
  }
  assert {
    condition     = length(google_pubsub_topic_iam_member.cli_publish) == 5
    error_message = "CLI users publish on the reruns topic and the four pipeline topics"
  }
  assert {
    condition     = google_cloudfunctions2_function.pipeline["job_events"].service_config[0].environment_variables["ROLLERBLADE_STAGER_IMAGE"] == var.stager_image
    error_message = "the stager image reaches job_events"
  }
}

run "rejects_a_cli_member_that_is_not_a_principal" {
  command = plan
  variables {
    cli_members = ["lab@example.org"]
  }
  expect_failures = [var.cli_members]
}
