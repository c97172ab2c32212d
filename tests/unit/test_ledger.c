/* SPDX-License-Identifier: Apache-2.0 */
/* test_ledger.c — the ledger's pure decisions: which experiment an instance may claim (a run: in order; a sweep:
 * any whose `after` are done), when to wait and when nothing is left, and when a lease counts as expired on the
 * observer's own monotonic clock. */
#include "run/fleet/ledger.h"
#include "util.h"
#include "test.h"

static struct job job_of(struct experiment *x, size_t n) {
        struct job j = { .n_experiments = n, .experiments = x };
        return j;
}

static const char *pick_name(enum ledger_next k) {
        static const char *const names[] = { "claim", "wait", "nothing-left", "all-done" };
        return names[k];
}

static void expect_pick(const char *name, const struct ledger *L, bool sequential, enum ledger_next want, int want_i) {
        int i = -1;
        enum ledger_next got = ledger_pick(L, sequential, &i);
        t_result(name, got == want && (want != LEDGER_CLAIM || i == want_i), "got %s %d, want %s %d", pick_name(got), i,
                 pick_name(want), want_i);
}

/* A gang of 2 (experiment "g", nodes 2): rank 0 is its lease, rank 1 a slot. */
static void test_gang(void) {
        struct experiment x[1] = { { .name = "g", .nodes = 2 } };
        struct job j = job_of(x, 1);
        struct ledger_slot slots[2];
        struct ledger_exp e[1];
        struct ledger L = { .job = &j, .n = 1, .exps = e, .ttl = 60, .held = -1 };
        snprintf(L.instance, sizeof L.instance, "i-here");
        snprintf(L.ip, sizeof L.ip, "127.11.1.3");
        memset(e, 0, sizeof e);
        memset(slots, 0, sizeof slots);
        e[0].slots = slots;
        T_EXPECT("gang: nobody there: rank 0 (its lease)", ledger_gang_rank(&L, 0) == 0);
        expect_pick("gang: a new gang's lease is claimed", &L, false, LEDGER_CLAIM, 0);

        e[0] = (struct ledger_exp){ .held = true, .alive = true, .lease_attempt = 1, .slots = slots };
        snprintf(e[0].holder, sizeof e[0].holder, "i-zero");
        snprintf(e[0].lease_ip, sizeof e[0].lease_ip, "127.11.1.2");
        T_EXPECT("gang: rank 0 alive, slot 1 free: rank 1", ledger_gang_rank(&L, 0) == 1);
        expect_pick("gang: a free slot is claimed beside a live rank 0", &L, false, LEDGER_CLAIM, 0);

        slots[1] = (struct ledger_slot){ .held = true, .attempt = 1, .mine = true };
        snprintf(slots[1].ip, sizeof slots[1].ip, "127.11.1.3");
        struct gang_view v;
        ledger_gang_view(&L, 0, 1, 1, &v);
        T_EXPECT("gang: whole from rank 1's side, addresses by rank", v.present == 2 && !v.broken &&
                         !strcmp(v.ips[0], "127.11.1.2") && !strcmp(v.ips[1], "127.11.1.3"));
        slots[1].mine = false;
        snprintf(slots[1].holder, sizeof slots[1].holder, "i-one");
        T_EXPECT("gang: full: no rank for a third instance", ledger_gang_rank(&L, 0) == -1);
        T_EXPECT("gang: whole", ledger_gang_whole(&L, 0));
        expect_pick("gang: whole and at work: a spare instance of a sweep may leave", &L, false, LEDGER_NOTHING_LEFT,
                    -1);

        e[0].lease_formed = true;
        slots[1].mine = true; /* this instance's slot of the attempt that went on without it (a restart) */
        T_EXPECT("gang: formed: its own slot of that attempt is not taken back", ledger_gang_rank(&L, 0) == -1);
        snprintf(slots[1].holder, sizeof slots[1].holder, "i-here");
        expect_pick("gang: ... and it stays in the group for the next attempt", &L, false, LEDGER_WAIT, -1);
        slots[1].mine = false;
        snprintf(slots[1].holder, sizeof slots[1].holder, "i-one");
        slots[1].released = slots[1].stale = true;
        slots[1].stop = (struct ledger_stop){ .set = true, .reason = "exit", .exit_code = 3 };
        T_EXPECT("gang: formed, rank 1 gave its place back: not taken again in that attempt",
                 ledger_gang_rank(&L, 0) == -1);
        expect_pick("gang: broken: its instances stay for the next attempt", &L, false, LEDGER_WAIT, -1);
        ledger_gang_view(&L, 0, 1, 0, &v);
        T_EXPECT("gang: rank 0 sees the member's own words", v.broken && v.n_missing == 1 && v.missing[0] == 1 &&
                         v.stop.set && v.stop.exit_code == 3 && strstr(v.why, "rank 1 (i-one) exited with code 3"));

        e[0].lease_stop = (struct ledger_stop){ .set = true, .reason = "gang-stopped" };
        T_EXPECT("gang: rank 0 stopping: no place", ledger_gang_rank(&L, 0) == -1);
        e[0].lease_stop.set = false;
        e[0].lease_attempt = 2;
        e[0].lease_formed = false;
        T_EXPECT("gang: the next attempt: the slot given back in the last is free", ledger_gang_rank(&L, 0) == 1);

        slots[1] = (struct ledger_slot){ .held = true, .attempt = 2, .finished = true };
        snprintf(slots[1].holder, sizeof slots[1].holder, "i-one");
        T_EXPECT("gang: rank 1 finished in this attempt: its place is not taken again", ledger_gang_rank(&L, 0) == -1);
        slots[1].released = true; /* a slot given back finished says both */
        snprintf(slots[1].holder, sizeof slots[1].holder, "i-here");
        T_EXPECT("gang: this instance's part finished: it stays in the group for rank 0",
                 ledger_gang_place_here(&L, 0));
        e[0].alive = true;
        expect_pick("gang: ... a sweep does not let it leave", &L, false, LEDGER_WAIT, -1);
        snprintf(slots[1].holder, sizeof slots[1].holder, "i-one");
        ledger_gang_view(&L, 0, 2, 0, &v);
        T_EXPECT("gang: a finished rank still counts while rank 0 works", v.present == 2 && !v.broken);

        slots[1] = (struct ledger_slot){ .held = true, .attempt = 2, .stale = true, .gone = true };
        snprintf(slots[1].holder, sizeof slots[1].holder, "i-one");
        e[0].lease_formed = true;
        ledger_gang_view(&L, 0, 2, 0, &v);
        T_EXPECT("gang: a vanished member breaks it, named", v.broken && strstr(v.why, "rank 1 (i-one) is gone"));
        e[0].stale = true;
        T_EXPECT("gang: rank 0 gone: its lease is taken (rank 0)", ledger_gang_rank(&L, 0) == 0);
}

int main(void) {
        struct experiment x[4] = { { .name = "a" }, { .name = "b" }, { .name = "c" }, { .name = "d" } };
        struct job j = job_of(x, 4);
        struct ledger_exp e[4];
        struct ledger L = { .job = &j, .n = 4, .exps = e, .ttl = 60, .held = -1 };

        memset(e, 0, sizeof e);
        expect_pick("a new run: the first experiment", &L, true, LEDGER_CLAIM, 0);
        expect_pick("a new sweep: the first experiment", &L, false, LEDGER_CLAIM, 0);

        e[0].held = true;
        expect_pick("run: the first is held by a live instance: wait", &L, true, LEDGER_WAIT, -1);
        expect_pick("sweep: another one while the first is held", &L, false, LEDGER_CLAIM, 1);

        e[0].stale = true;
        expect_pick("run: a stale lease can be taken over", &L, true, LEDGER_CLAIM, 0);

        e[0] = (struct ledger_exp){ .done = true };
        expect_pick("run: the next after a done one", &L, true, LEDGER_CLAIM, 1);

        e[1].held = e[2].held = e[3].held = true;
        expect_pick("sweep: everything left held, a holder not seen renewing yet: watch", &L, false, LEDGER_WAIT, -1);
        e[1].alive = e[2].alive = true;
        expect_pick("sweep: ... still one holder not seen renewing: watch", &L, false, LEDGER_WAIT, -1);
        e[3].alive = true;
        expect_pick("sweep: everything left held by instances that renew: nothing for this instance", &L, false,
                    LEDGER_NOTHING_LEFT, -1);
        expect_pick("run: the next held: wait for its holder", &L, true, LEDGER_WAIT, -1);

        e[2].held = false;
        expect_pick("run: never the third before the second", &L, true, LEDGER_WAIT, -1);
        expect_pick("sweep: the third is free", &L, false, LEDGER_CLAIM, 2);

        e[1].held = false;
        e[1].mine = false;
        e[3] = (struct ledger_exp){ .held = true, .mine = true };
        x[1].n_after = 1;
        x[1].after[0] = 3;
        expect_pick("sweep: b waits after d, c is free", &L, false, LEDGER_CLAIM, 2);
        e[2].held = true;
        expect_pick("sweep: only my own d is left to claim again", &L, false, LEDGER_CLAIM, 3);
        e[3] = (struct ledger_exp){ .done = true };
        e[2] = (struct ledger_exp){ .done = true };
        expect_pick("sweep: d done, so b may go", &L, false, LEDGER_CLAIM, 1);
        e[1] = (struct ledger_exp){ .done = true };
        expect_pick("all done", &L, false, LEDGER_ALL_DONE, -1);

        memset(e, 0, sizeof e);
        L.ended = true;
        expect_pick("an ended run has nothing left, whatever its experiments", &L, true, LEDGER_ALL_DONE, -1);

        T_EXPECT("a lease unchanged for less than ttl x skew is alive", !ledger_lease_expired(100.0, 100.0 + 179.9, 60));
        T_EXPECT("a lease unchanged for ttl x skew is expired", ledger_lease_expired(100.0, 100.0 + 180.0, 60));
        T_EXPECT("the observer's own clock counts: a lease first seen now is alive", !ledger_lease_expired(5000.0, 5000.0, 1));
        test_gang();
        return t_summary();
}
