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
