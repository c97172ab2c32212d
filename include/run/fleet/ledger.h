/* SPDX-License-Identifier: Apache-2.0 */
/* ledger.h — a run shared by the instances that run it, kept in S3 alone (shared/aws/COORDINATION.md §2): who holds
 * which experiment (a lease per experiment, renewed while it runs), which are finished (a done record each,
 * committed once), the attempts, and whether the run is over (one end record). Under the run's prefix:
 *
 *   ledger/lease/<experiment>.json   {"holder", "generation", "attempt", "ttl"}      If-None-Match to claim,
 *                                                                                   If-Match to renew or take over
 *   ledger/exp/<experiment>.json     {"attempts", "instances": [...]}                 If-Match / If-None-Match
 *   ledger/done/<experiment>.json    {"instance", "attempts", "exit_code", ...}       If-None-Match: once
 *   ledger/end.json                  {"outcome", "reason", "instance"}                If-None-Match: once
 *   ledger/cancel.json               {"by", "time"}                                   If-None-Match: once (the
 *                                                                                   laptop's `mayfly cancel`)
 *   ledger/instances/<instance>.json {"instance", "time", "phase", "experiment", "ttl",  the run's heartbeat, and
 *                                     "type", "launched", "cost", "attempts", "ended"} what the instance did for the
 *                                                                                   run (written by it alone)
 *
 * A lease counts as expired only when its ETag has stayed the same for ttl × LEDGER_SKEW seconds on the observer's
 * own monotonic clock (its wall clock may be minutes off); the holder times its lease from a monotonic instant
 * taken before each renewal and gives up its experiment before ttl has passed without a renewal, well before
 * anyone may take it. A takeover is an If-Match write on the ETag that was watched, and bumps the generation.
 * A lease that missed a renewal has its holder looked up in EC2 (DescribeInstances): a holder EC2 reports
 * shutting-down, terminated, stopping or stopped is gone, and its experiment is taken over at once. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "aws/aws.h"
#include "run/base/job.h"

#define LEDGER_SKEW 3.0               /* an observer waits ttl × this before taking over */
#define LEDGER_DEFAULT_TTL 60         /* seconds: renewed every ttl/3; the worst-case takeover is ~ttl × 3 + a poll */
#define LEDGER_MAX_INSTANCES 16       /* instances listed per experiment */
#define LEDGER_MAX_PEERS 64           /* other instances' records read back (a sweep's, its replacements') */
#define LEDGER_SELF_MAX 49152         /* this instance's own fields of its record (JSON text; the record is read back
                                       * under CAP_LEDGER_RECORD, 64 KiB) */

/* Another instance's record as last read (ledger/instances/<id>.json), read again only when its ETag changed. */
struct ledger_peer {
        char id[32];
        char etag[128];
        char *body;
};

/* Why a gang member stopped its part (written into its lease or slot, read by the others). */
struct ledger_stop {
        bool set;
        char reason[24];              /* an exp_reason name: exit, interrupted, lease-lost, ... */
        int exit_code, signal;
};

/* A gang's slot r >= 1 (ledger/slot/<experiment>/<r>.json) as last read; rank 0 is the experiment's lease. */
struct ledger_slot {
        bool held, seen_now;          /* the object exists (seen in the last listing) */
        bool mine, stale, released, finished, read;
        bool gone;                    /* EC2 says its holder is going or gone (asked once per ETag) */
        char etag[128];
        double seen_since;            /* monotonic: when this instance first saw etag */
        char holder[32];
        char ip[16];
        int attempt;                  /* the gang attempt (rank 0's) it was claimed for */
        struct ledger_stop stop;
};

/* One experiment as the ledger shows it. */
struct ledger_exp {
        bool done;
        bool held;                    /* a lease object exists */
        bool mine;                    /* ... and it is this instance's */
        bool stale;                   /* ... and its ETag has not changed for ttl × LEDGER_SKEW here */
        bool alive;                   /* ... and its ETag changed while this instance watched: its holder renews */
        bool holder_gone;             /* ... and EC2 says its holder is going or gone: taken over at once (stale) */
        bool released;                /* ... and its holder gave it back by overwriting it (a store that ignores
                                       * If-Match on DELETE): taken at once (stale) */
        char lease_etag[128];
        double seen_since;            /* monotonic: when this instance first saw lease_etag */
        char holder[32];              /* the lease's holder (read once per ETag) */
        bool seen_holder;
        int attempts;
        char instances[LEDGER_MAX_INSTANCES][32];
        size_t n_instances;
        /* from its done record */
        int exit_code, signal;
        char reason[24];
        time_t start, end;
        char done_by[32];
        /* its lease's body (read once per ETag): the attempt, the holder's private address, why it stops */
        int lease_attempt;
        char lease_ip[16];
        struct ledger_stop lease_stop;
        bool lease_formed;            /* a gang's rank 0 saw the gang whole: no slot of its attempt is taken again */
        struct ledger_slot *slots;    /* a gang's (nodes > 1): nodes entries, [0] unused; NULL otherwise */
};

struct ledger {
        struct aws_ctx *c;
        char bucket[64];
        char prefix[1200];            /* the run's prefix; the ledger is prefix + "ledger/" */
        char instance[32];
        long ttl;
        size_t n;
        struct ledger_exp *exps;      /* n, in the job's order */
        const struct job *job;
        bool ended;
        char end_outcome[24], end_reason[64], end_by[32];
        bool cancelled;               /* cancel.json exists (`mayfly cancel`), as last read */
        char cancel_by[160];          /* ... and who wrote it (an ARN) */
        /* the lease this instance holds */
        int held;                     /* experiment index, -1 = none */
        char etag[128];
        long generation;
        int attempt;
        int rank;                     /* 0: the experiment's lease (a gang's rank 0); r: a gang's slot r */
        struct ledger_stop stopping;  /* why this instance stops its part of a gang (in its lease from now on) */
        bool part_finished;           /* its part of the gang exited 0: its slot is given back "finished" */
        bool gang_formed;             /* rank 0: the gang is whole ("formed" in its lease from now on) */
        char ip[16];                  /* this instance's private IPv4, in its leases ("" = none) */
        bool gang_watch;              /* the keeper watches the held experiment's gang (it runs) */
        bool gang_news;               /* ... and found it broken (news: not yet taken) */
        char gang_why[200];
        struct ledger_stop gang_stop; /* ... the member's own words, when it wrote why */
        double gang_next;             /* monotonic: the keeper's next look at the gang */
        struct ledger *shadow;        /* the keeper's own copy for that look (its thread's alone; NULL: none) */
        bool shadow_reset;            /* a new watch: the copy is made again from this ledger */
        double renewed_at;            /* monotonic instant taken before the last renewal that took */
        /* the keeper: a thread that renews the held lease every ttl/3 and beats the heartbeat */
        pthread_mutex_t lock;         /* over the held lease's fields, between the keeper and the driver */
        pthread_cond_t cond;          /* on CLOCK_MONOTONIC */
        pthread_t th;
        bool keeping, stop;
        bool lost;                    /* the held lease was taken, or could not be renewed in time */
        bool over, over_news;         /* the keeper found the run's end record (news: not yet taken) */
        bool cancel_seen, cancel_news; /* the keeper found cancel.json (news: not yet taken) */
        char cancel_news_by[160];
        int wake_fd;                  /* an eventfd written when lost becomes true (-1: none) */
        char phase[16], experiment[80];
        char exp_etag[256][128];      /* the exp records' ETags last read: read again only when changed */
        char *self;                   /* this instance's own fields of its record (a JSON object's text), NULL none */
        pthread_mutex_t beat_lock;    /* one heartbeat PUT at a time: an older snapshot never lands after a newer */
        bool beat_soon;               /* the keeper beats at its next turn (what the record says changed) */
        struct ledger_peer peers[LEDGER_MAX_PEERS];
        size_t n_peers;
        bool ec2_denied;              /* DescribeInstances refused: vanished holders wait out their TTL */
        bool probed;                  /* how the store treats If-Match on DELETE is known (s3cas_probe_delete) */
        bool broken, broken_taken;    /* the store refused a renewal whose condition held (-MF_ESTORE) */
        char broken_msg[1024];
};

int ledger_init(struct ledger *L, struct aws_ctx *c, const char *bucket, const char *prefix, const char *instance,
                const struct job *job, long ttl);
void ledger_free(struct ledger *L);

/* One LIST of the ledger (and a GET of the records it needs): done, held, stale, attempts, the end. */
int ledger_refresh(struct ledger *L, struct aws_result *out);

/* What this instance may do next. Pure: from the ledger as last read. sequential: each experiment waits for the one
 * before it (a run on one instance at a time); else only for its `after` list (a sweep). Nothing left (leave the
 * group) only when every unfinished experiment is held by an instance seen renewing its lease: a lease not seen
 * renewing is watched (wait) until it renews or expires. */
enum ledger_next { LEDGER_CLAIM, LEDGER_WAIT, LEDGER_NOTHING_LEFT, LEDGER_ALL_DONE };
enum ledger_next ledger_pick(const struct ledger *L, bool sequential, int *ret_index);
/* Pure: a lease whose ETag was first seen at seen_since is expired at now (both monotonic) for ttl. */
bool ledger_lease_expired(double seen_since, double now, long ttl);
struct cJSON;
/* Pure: an experiment's exp record ({"attempts", "instances"}) and its done record into e; numbers out of range
 * (whoever writes the prefix writes these) read as their defaults. */
void ledger_read_exp(struct ledger_exp *e, const struct cJSON *o);
void ledger_read_done(struct ledger_exp *e, const struct cJSON *o);
/* Pure: the lease missed a renewal (unchanged for over ttl/2; renewed every ttl/3): EC2 is asked about its holder. */
bool ledger_lease_overdue(double seen_since, double now, long ttl);
/* Pure: an EC2 instance state in which a holder renews nothing any more (shutting-down, terminated, stopping,
 * stopped). A stopped holder that starts again finds its lease's ETag changed: it never resumes over the taker. */
bool ledger_instance_gone(const char *ec2_state);

/* Claims experiment i: creates its lease, or takes over a stale one on the watched ETag; then counts the attempt.
 * 0 with L->held = i and L->attempt; -MF_EPRECOND when another instance won it; -E2BIG when max_attempts is
 * spent (the lease is given back). */
int ledger_claim(struct ledger *L, int i, int max_attempts, struct aws_result *out);
/* Renews the held lease. -MF_EPRECOND: it was taken (this instance lost the experiment). */
int ledger_renew(struct ledger *L, struct aws_result *out);
/* Seconds the held lease has left by this instance's monotonic clock (< 0: it must be given up). */
double ledger_lease_left(const struct ledger *L);
/* Gives the held lease back (after the experiment's results are in S3, or when stopping). */
int ledger_release(struct ledger *L, struct aws_result *out);
/* The held experiment is finished: its done record (once), then the lease given back. */
struct ledger_done {
        int exit_code, signal;
        const char *reason;
        time_t start, end;
};
int ledger_commit(struct ledger *L, const struct ledger_done *d, struct aws_result *out);
/* Ends the run (once for all instances). 1 when this instance ended it, 0 when another had already. */
int ledger_end(struct ledger *L, const char *outcome, const char *reason, struct aws_result *out);
/* The run's heartbeat: this instance is alive, in phase, on experiment (NULL: none). */
int ledger_heartbeat(struct ledger *L, const char *phase, const char *experiment, struct aws_result *out);

/* What this instance's record says besides its heartbeat (type, cost, attempts, its end: a JSON object's text,
 * copied); beat: written at the keeper's next turn rather than at the next heartbeat. */
void ledger_set_self(struct ledger *L, const char *json, bool beat);
/* This instance's record written now (its last word: called after the keeper is stopped, or beside it). */
int ledger_beat_now(struct ledger *L, struct aws_result *out);
/* The other instances' records read again (a LIST of ledger/instances/, a GET of each that changed). */
int ledger_read_peers(struct ledger *L, struct aws_result *out);
/* The other instances' records as last read: a JSON array of objects (free it), NULL when none or on ENOMEM. */
struct cJSON *ledger_peers_json(struct ledger *L);

/* A reader's view (mayfly status): whether the run has a ledger at all, whether it ended, and the newest heartbeat
 * of its instances (their own clocks) with the TTL they announced. 0, or -errno. */
struct ledger_liveness {
        bool has_ledger, ended;
        size_t instances;
        time_t last_beat;             /* 0: none */
        long ttl;
        char last_instance[32], last_phase[16];
};
int ledger_liveness(struct aws_ctx *c, const char *bucket, const char *prefix, struct ledger_liveness *ret,
                    struct aws_result *out);

/* The keeper thread: renews the held lease every ttl/3 (a renewal it cannot make in time gives the experiment up:
 * lost, wake_fd written, long before an observer may take it), writes the heartbeat and looks for the run's end
 * record (over, wake_fd written). */
int ledger_keeper_start(struct ledger *L, int wake_fd);
void ledger_keeper_stop(struct ledger *L);
/* What the heartbeat says from now on. */
void ledger_set_phase(struct ledger *L, const char *phase, const char *experiment);
/* Where a lost lease is signalled from now on (-1: nowhere). */
void ledger_set_wake(struct ledger *L, int wake_fd);
/* The experiment whose lease this instance holds now, -1: none. */
int ledger_held(struct ledger *L);
/* The keeper found that another instance ended the run (once; the news is cleared). */
bool ledger_take_over(struct ledger *L);
/* The keeper found the run's cancel record (once; the news is cleared): who cancelled it into by. */
bool ledger_take_cancel(struct ledger *L, char *by, size_t n);
/* The store refused a renewal whose condition held (-MF_ESTORE): once, its one-line message into msg. */
bool ledger_take_broken(struct ledger *L, char *msg, size_t n);
/* The held lease was lost (the flag is cleared). */
bool ledger_take_lost(struct ledger *L);

/* ---------- gangs (gang.c): an experiment with nodes > 1, run by that many instances at once ----------
 *
 * Rank 0 holds the experiment's lease like any experiment: it claims it, counts the attempt, restores and ships the
 * checkpoint, commits the done record. Ranks 1..K-1 hold slot leases for rank 0's attempt:
 *
 *   ledger/slot/<experiment>/<r>.json  {"holder", "generation", "attempt", "ttl", "ip", ["stop"], ["released"],
 *                                       ["finished"]}                          If-None-Match to claim, If-Match after
 *
 * renewed by the keeper like the lease. The gang runs when rank 0's lease and every slot are held for one attempt.
 * A member that stops its part writes why ("stop": {"reason", "exit_code", "signal"}) into its lease or slot; every
 * member's keeper watches the others while the gang runs, and a member stopped, gone (its lease stale, EC2 says its
 * instance is gone) or given back stops the whole gang. A slot given back stays, "released" (free to take at once),
 * with why it stopped, or "finished" (its part exited 0: not taken again for that attempt). */

/* Pure: the rank this instance would take in experiment i: 0 (its lease is free, stale or this instance's), a free
 * slot (rank 0's lease alive and not stopping), or -1 (the gang is full, or rank 0 is stopping). */
int ledger_gang_rank(const struct ledger *L, size_t i);
/* Pure: whether experiment i's gang is whole and at work for its attempt (rank 0 alive and not stopping, every slot
 * held for that attempt, or finished in it): an instance with no place in it may leave a sweep; else it stays. */
bool ledger_gang_whole(const struct ledger *L, size_t i);
/* Pure: this instance holds a place in experiment i's gang, or gave one back "finished" (it waits for rank 0): it
 * stays in the group. */
bool ledger_gang_place_here(const struct ledger *L, size_t i);
/* Rank 0 saw the gang whole: "formed" goes into its lease now. */
int ledger_gang_formed(struct ledger *L, struct aws_result *out);
/* Claims slot r (>= 1) of experiment i for rank 0's attempt as last read. 0 with L->held = i, L->rank = r and
 * L->attempt; -MF_EPRECOND when another instance won it. */
int ledger_claim_slot(struct ledger *L, int i, int r, struct aws_result *out);
/* Pure: the gang of experiment i for attempt as last read: how many of its nodes are held for it (present), the
 * ranks missing (missing[], n_missing), the members' addresses by rank (ips: nodes × 16 bytes), and whether it is
 * broken (a member stopped, gone, or held for another attempt: why, and the member's stop when it wrote one). */
struct gang_view {
        int present, nodes;
        int missing[JOB_MAX_NODES];
        int n_missing;
        char ips[JOB_MAX_NODES][16];
        bool broken, done;
        char why[200];
        struct ledger_stop stop;
};
void ledger_gang_view(const struct ledger *L, size_t i, int attempt, int self_rank, struct gang_view *v);
/* Writes why this instance stops its part into its held lease or slot now (and at every renewal after). */
int ledger_gang_stop(struct ledger *L, const struct ledger_stop *s, struct aws_result *out);
/* Gives the held slot back: "finished" (its part exited 0) or released with its stop. Rank 0: ledger_release. */
int ledger_slot_release(struct ledger *L, bool finished, struct aws_result *out);
/* The held place is dropped here without a word to S3 (a give-back that could not be written: it expires). */
void ledger_drop(struct ledger *L);
/* The keeper watches the gang of the held experiment from now on (false: no more). */
void ledger_gang_watch(struct ledger *L, bool on);
/* The keeper found the gang broken (once; the news is cleared): why, and the member's stop. */
bool ledger_take_gang(struct ledger *L, char *why, size_t n, struct ledger_stop *stop);
