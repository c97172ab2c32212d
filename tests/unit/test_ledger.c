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
        return t_summary();
}
