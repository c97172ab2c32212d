/* SPDX-License-Identifier: Apache-2.0 */
/* test_lifecycle.c — the table: named paths through it, and properties over every cell (every ending goes
 * STOPPING → SHIP → EXIT, nothing reaches EXIT without SHIP); the name tables; the outcome; the exit decision. */
#include "run/lifecycle.h"
#include "util.h"
#include "test.h"

/* Follows events from a phase; the phases entered and actions called, as "PHASE:action ..." */
static void walk(enum phase p, const enum lc_event *evs, size_t n, char *out, size_t len, enum lc_end *end) {
        out[0] = 0;
        size_t o = 0;
        *end = END_NONE;
        for (size_t i = 0; i < n; i++) {
                struct lc_step s = lc_transition(p, evs[i]);
                if (s.end == END_CLEAR)
                        *end = END_NONE;
                else if (s.end != END_NONE && *end == END_NONE)
                        *end = s.end;
                p = s.next;
                o += (size_t)snprintf(out + o, len - o, "%s%s:%s", o ? " " : "", phase_name(p), lc_action_name(s.action));
                if (o >= len)
                        return;
        }
}

static void test_paths(void) {
        struct {
                const char *name;
                enum phase from;
                enum lc_event ev[10];
                size_t n;
                const char *want;
                enum lc_end end;
        } cases[] = {
                { "a run that finishes", PH_FETCH,
                  { EV_BOOT, EV_DONE, EV_DONE, EV_EXP_ENDED, EV_EXP_ENDED, EV_NO_MORE, EV_DONE, EV_DONE }, 8,
                  "FETCH:fetch PREPARE:prepare RUN:start RUN:start RUN:start SHIP:ship EXIT:exit DONE:none",
                  END_FINISHED },
                { "SIGTERM mid-experiment: stop, ship, exit (resume later)", PH_RUN,
                  { EV_SIGTERM, EV_EXP_ENDED, EV_DONE }, 3, "STOPPING:stop SHIP:ship EXIT:exit", END_STOPPED },
                { "a spot notice", PH_RUN, { EV_SPOT, EV_EXP_ENDED, EV_DONE }, 3, "STOPPING:stop SHIP:ship EXIT:exit",
                  END_SPOT },
                { "max_runtime", PH_RUN, { EV_MAX_RUNTIME, EV_EXP_ENDED, EV_DONE, EV_DONE }, 4,
                  "STOPPING:stop SHIP:ship EXIT:exit DONE:none", END_MAX_RUNTIME },
                { "a bad spec", PH_FETCH, { EV_FAILED, EV_EXP_ENDED, EV_DONE, EV_DONE }, 4,
                  "STOPPING:stop SHIP:ship EXIT:exit DONE:none", END_ERROR },
                { "a spot notice while fetching", PH_FETCH, { EV_SPOT, EV_EXP_ENDED }, 2, "STOPPING:stop SHIP:ship",
                  END_SPOT },
                { "the failsafe after crashes in RUN", PH_RUN, { EV_FAILSAFE, EV_EXP_ENDED, EV_DONE }, 3,
                  "STOPPING:stop SHIP:ship EXIT:exit", END_FAILSAFE },
                { "the first end counts", PH_RUN, { EV_MAX_RUNTIME, EV_SPOT, EV_SIGTERM, EV_EXP_ENDED }, 4,
                  "STOPPING:stop STOPPING:none STOPPING:none SHIP:ship", END_MAX_RUNTIME },
                { "an upload that does not complete stays in SHIP", PH_SHIP, { EV_INCOMPLETE, EV_BOOT, EV_DONE }, 3,
                  "SHIP:exit SHIP:ship EXIT:exit", END_NONE },
                { "a restart in SHIP ships again", PH_SHIP, { EV_BOOT, EV_DONE }, 2, "SHIP:ship EXIT:exit", END_NONE },
                { "a restart in RUN prepares again", PH_RUN, { EV_BOOT, EV_DONE }, 2, "PREPARE:prepare RUN:start",
                  END_NONE },
                { "a crash while stopping", PH_STOPPING, { EV_BOOT, EV_EXP_ENDED }, 2, "STOPPING:stop SHIP:ship",
                  END_NONE },
                { "back after a spot stop", PH_EXIT, { EV_BACK, EV_DONE }, 2, "PREPARE:prepare RUN:start", END_NONE },
                { "a finished run still up", PH_DONE, { EV_BOOT, EV_DONE }, 2, "DONE:exit DONE:none", END_NONE },
                { "SIGTERM while shipping is ignored", PH_SHIP, { EV_SIGTERM }, 1, "SHIP:none", END_NONE },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char got[512];
                enum lc_end end;
                walk(cases[i].from, cases[i].ev, cases[i].n, got, sizeof got, &end);
                T_EXPECT_STR(cases[i].name, got, cases[i].want);
                char name[200];
                snprintf(name, sizeof name, "%s: ends %s", cases[i].name, lc_end_name(cases[i].end));
                T_EXPECT(name, end == cases[i].end);
        }
}

/* From every phase and every ending event, completing each action (an experiment ends, a phase's work is done)
 * reaches EXIT, through SHIP, and nothing before SHIP calls the exit action. */
static void test_every_ending_ships_first(void) {
        static const enum lc_event endings[] = { EV_SPOT, EV_SIGTERM, EV_MAX_RUNTIME, EV_FAILED, EV_FAILSAFE };
        int bad = 0, checked = 0;
        for (int p = PH_FETCH; p <= PH_STOPPING; p++)
                for (size_t k = 0; k < ARRAY_SIZE(endings); k++) {
                        struct lc_step s = lc_transition((enum phase)p, endings[k]);
                        if (s.action == A_NONE)
                                continue; /* not for this phase */
                        bool shipped = false, exited = false;
                        enum phase ph = s.next;
                        enum lc_action a = s.action;
                        for (int steps = 0; steps < 10 && !exited; steps++) {
                                if (a == A_SHIP)
                                        shipped = true;
                                if (a == A_EXIT) {
                                        exited = true;
                                        bad += !shipped;
                                        break;
                                }
                                enum lc_event done = a == A_STOP ? EV_EXP_ENDED : EV_DONE;
                                s = lc_transition(ph, done);
                                ph = s.next;
                                a = s.action;
                        }
                        checked++;
                        bad += !exited;
                }
        T_EXPECT("every ending from FETCH, PREPARE, RUN, STOPPING reaches the exit through SHIP", bad == 0 && checked >= 15);
        /* and the only cells that call the exit action are SHIP's, EXIT's and DONE's */
        int exit_elsewhere = 0;
        for (int p = 0; p < PH__MAX; p++)
                for (int e = 0; e < EV__MAX; e++) {
                        struct lc_step s = lc_transition((enum phase)p, (enum lc_event)e);
                        exit_elsewhere += s.action == A_EXIT && p != PH_SHIP && p != PH_EXIT && p != PH_DONE;
                }
        T_EXPECT("only SHIP, EXIT and DONE lead to the exit action", exit_elsewhere == 0);
        struct lc_step s = lc_transition(PH__MAX, EV_BOOT);
        T_EXPECT("a phase out of range stays, does nothing", s.next == PH__MAX && s.action == A_NONE);
        s = lc_transition(PH_RUN, EV_BACK);
        T_EXPECT("an event not for a phase leaves it as it is", s.next == PH_RUN && s.action == A_NONE);
}

static void test_names(void) {
        bool ok = true;
        for (int p = 0; p < PH__MAX; p++)
                ok &= phase_name((enum phase)p) && phase_from_name(phase_name((enum phase)p)) == p;
        for (int o = 0; o < OUT__MAX; o++)
                ok &= outcome_name((enum outcome)o) && outcome_from_name(outcome_name((enum outcome)o)) == o;
        for (int r = 0; r < R__MAX; r++)
                ok &= exp_reason_name((enum exp_reason)r) && exp_reason_from_name(exp_reason_name((enum exp_reason)r)) == r;
        for (int e = 0; e < END__MAX; e++)
                ok &= lc_end_name((enum lc_end)e) && lc_end_from_name(lc_end_name((enum lc_end)e)) == e;
        for (int e = 0; e < EV__MAX; e++)
                ok &= lc_event_name((enum lc_event)e) != NULL;
        for (int a = 0; a < A__MAX; a++)
                ok &= lc_action_name((enum lc_action)a) != NULL;
        T_EXPECT("every enum has a name, and names parse back", ok);
        T_EXPECT("names past the end are NULL, unknown names -1",
                 !phase_name(PH__MAX) && !outcome_name(OUT__MAX) && phase_from_name("BOOT") == -1 &&
                         outcome_from_name(NULL) == -1);
        T_EXPECT_STR("the SIGTERM end's name", lc_end_name(END_STOPPED), "agent-stopped");
}

static void test_outcome(void) {
        struct lc_exp ok = { .ran = true, .reason = R_EXIT, .exit_code = 0 };
        struct lc_exp fail = { .ran = true, .reason = R_EXIT, .exit_code = 3 };
        struct lc_exp tmo = { .ran = true, .reason = R_TIMEOUT, .exit_code = -1 };
        struct lc_exp idle = { .ran = true, .reason = R_GPU_IDLE, .exit_code = -1 };
        struct lc_exp skip = { .skipped = true, .reason = R_SKIPPED, .exit_code = -1 };
        struct lc_exp mrt = { .skipped = true, .reason = R_MAX_RUNTIME, .exit_code = -1 };
        struct {
                const char *name;
                enum lc_end end;
                bool error;
                struct lc_exp e[3];
                size_t n;
                enum outcome want;
        } cases[] = {
                { "all ran and exited 0", END_FINISHED, false, { ok, ok }, 2, OUT_SUCCEEDED },
                { "one failed", END_FINISHED, false, { ok, fail }, 2, OUT_FAILED },
                { "one skipped", END_FINISHED, false, { fail, skip }, 2, OUT_FAILED },
                { "a timeout beats a failure", END_FINISHED, false, { fail, tmo }, 2, OUT_TIMEOUT },
                { "gpu idle", END_FINISHED, false, { ok, idle }, 2, OUT_GPU_IDLE },
                { "never started for max_runtime", END_FINISHED, false, { ok, mrt }, 2, OUT_TIMEOUT },
                { "a spot notice", END_SPOT, false, { ok }, 1, OUT_INTERRUPTED },
                { "SIGTERM", END_STOPPED, false, { ok }, 1, OUT_INTERRUPTED },
                { "max_runtime", END_MAX_RUNTIME, false, { ok }, 1, OUT_TIMEOUT },
                { "an error", END_ERROR, false, { ok }, 1, OUT_ERROR },
                { "the failsafe", END_FAILSAFE, false, { ok }, 1, OUT_ERROR },
                { "a refused path makes any end an error", END_FINISHED, true, { ok }, 1, OUT_ERROR },
                { "no end yet", END_NONE, false, { ok }, 1, OUT_RUNNING },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                enum outcome o = lc_outcome(cases[i].end, cases[i].error, cases[i].e, cases[i].n);
                t_result(cases[i].name, o == cases[i].want, "got %s, want %s", outcome_name(o), outcome_name(cases[i].want));
        }
}

static void test_exit(void) {
        struct {
                const char *name;
                enum lc_end end;
                enum outcome o;
                bool shipped;
                enum exit_action on_exit, on_error;
                enum lc_exit kind;
                enum exit_action action;
                bool keep_disk;
        } cases[] = {
                { "succeeded: on_exit", END_FINISHED, OUT_SUCCEEDED, true, EXIT_ACTION_TERMINATE, EXIT_ACTION_KEEP,
                  X_ACTION, EXIT_ACTION_TERMINATE, false },
                { "failed: on_error", END_FINISHED, OUT_FAILED, true, EXIT_ACTION_TERMINATE, EXIT_ACTION_KEEP, X_ACTION,
                  EXIT_ACTION_KEEP, false },
                { "not shipped: stop, not terminate", END_FINISHED, OUT_SUCCEEDED, false, EXIT_ACTION_TERMINATE,
                  EXIT_ACTION_TERMINATE, X_ACTION, EXIT_ACTION_STOP, true },
                { "not shipped: stop, not power off", END_ERROR, OUT_ERROR, false, EXIT_ACTION_TERMINATE,
                  EXIT_ACTION_POWEROFF, X_ACTION, EXIT_ACTION_STOP, true },
                { "not shipped, keep: keep", END_FINISHED, OUT_FAILED, false, EXIT_ACTION_TERMINATE, EXIT_ACTION_KEEP,
                  X_ACTION, EXIT_ACTION_KEEP, false },
                { "SIGTERM: resume later", END_STOPPED, OUT_INTERRUPTED, true, EXIT_ACTION_TERMINATE,
                  EXIT_ACTION_TERMINATE, X_RESUME_LATER, EXIT_ACTION_TERMINATE, false },
                { "spot: await the reclaim, on_error after", END_SPOT, OUT_INTERRUPTED, true, EXIT_ACTION_KEEP,
                  EXIT_ACTION_TERMINATE, X_AWAIT_RECLAIM, EXIT_ACTION_TERMINATE, false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct lc_exit_plan p = lc_exit_decide(cases[i].end, cases[i].o, cases[i].shipped, cases[i].on_exit,
                                                       cases[i].on_error);
                t_result(cases[i].name, p.kind == cases[i].kind && p.action == cases[i].action &&
                                                p.keep_disk == cases[i].keep_disk,
                         "kind %d action %s keep_disk %d", p.kind, exit_action_name(p.action), p.keep_disk);
        }
}

int main(void) {
        test_paths();
        test_every_ending_ships_first();
        test_names();
        test_outcome();
        test_exit();
        return t_summary();
}
