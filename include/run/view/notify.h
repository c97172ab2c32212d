/* SPDX-License-Identifier: Apache-2.0 */
/* notify.h — telling someone that a run ended: one summary, as a text for people (Slack and Teams incoming
 * webhooks show {"text": ...}; SNS e-mail and SMS subscribers get it as the message) and as JSON for scripts,
 * sent to an SNS topic and/or an HTTPS webhook. Composing is pure; sending is bounded so that a notification
 * never holds up the exit action for long. */
#pragma once
#include <stdbool.h>
#include <time.h>

#include "aws/sns.h"
#include "run/base/job.h"

#define NOTIFY_DEADLINE_S 10              /* the whole notification, every channel */
#define NOTIFY_REQUEST_TIMEOUT_MS 4000    /* each HTTP attempt */
#define NOTIFY_ATTEMPTS 2                 /* SNS: one retry (throttling, a 5xx) */
#define NOTIFY_MAX_EXPERIMENTS 10         /* listed by name in the text */
#define NOTIFY_SENT_FILE "notified.json"  /* in the state directory: what was sent for which run */

enum notify_event { NOTIFY_NONE, NOTIFY_FINISHED, NOTIFY_INTERRUPTED };

/* Pure: the message a run is due. A terminal outcome: FINISHED. "interrupted": INTERRUPTED when the interruption
 * ends the run (a terminate notice) or on_interrupt asks for every interruption; none when the run goes on later
 * (a stop or hibernate notice: EC2 may start the instance again) and on_interrupt is off. */
enum notify_event notify_due(const struct job_notify *n, const char *outcome, bool run_goes_on);
/* Pure: "finished", or "interrupted@<spot time>" (each interruption is its own message). */
void notify_key(enum notify_event e, time_t spot_time, char out[64]);

struct cJSON;

struct notify_msg {
        char subject[SNS_MAX_SUBJECT + 1];
        char *text;                       /* several lines */
        char *json;                       /* the webhook body: {"text": ..., "mayfly": {...}} */
};

/* Pure: the summary of a status.json (outcome, durations, experiments, cost, the report link and until when it
 * works, the results location). */
int notify_compose(const struct cJSON *status, enum notify_event e, const char *report_url, time_t url_until,
                   struct notify_msg *ret);
void notify_msg_free(struct notify_msg *m);

/* notified.json: has key been sent for run_id? Record that it was (attempted: a failure is not retried by a
 * restarted agent). */
bool notify_was_sent(const char *path, const char *run_id, const char *key);
int notify_mark_sent(const char *path, const char *run_id, const char *key);

/* "https://hooks.slack.com/…": the URL without its path, query or credentials (webhook URLs are secrets). */
void notify_redact_url(const char *url, char *out, size_t n);
/* POSTs json to url (Content-Type: application/json, no redirects, TLS verified against AWS_CA_BUNDLE when set);
 * 0 on a 2xx answer. err says why not, naming the host only. */
int notify_webhook(const char *url, const char *json, long timeout_ms, char *err, size_t errlen);
