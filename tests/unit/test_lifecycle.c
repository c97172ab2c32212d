/* SPDX-License-Identifier: Apache-2.0 */
/* test_lifecycle.c — the table: named paths through it, and properties over every cell (every ending goes
 * STOPPING → SHIP → EXIT, nothing reaches EXIT without SHIP); the name tables; the outcome; the exit decision. */
#include "run/base/lifecycle.h"
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
                  "STOPPING:stop STOPPING:stop STOPPING:stop SHIP:ship", END_MAX_RUNTIME },
                { "an upload that does not complete stays in SHIP", PH_SHIP, { EV_INCOMPLETE, EV_BOOT, EV_DONE }, 3,
                  "SHIP:exit SHIP:ship EXIT:exit", END_NONE },
                { "a restart in SHIP ships again", PH_SHIP, { EV_BOOT, EV_DONE }, 2, "SHIP:ship EXIT:exit", END_NONE },
                { "a restart in RUN prepares again", PH_RUN, { EV_BOOT, EV_DONE }, 2, "PREPARE:prepare RUN:start",
                  END_NONE },
                { "a crash while stopping", PH_STOPPING, { EV_BOOT, EV_EXP_ENDED }, 2, "STOPPING:stop SHIP:ship",
                  END_NONE },
                { "back after a spot stop", PH_EXIT, { EV_BACK, EV_DONE }, 2, "PREPARE:prepare RUN:start", END_NONE },
                { "back after a spot stop that came while stopping", PH_STOPPING, { EV_BACK, EV_DONE }, 2,
                  "PREPARE:prepare RUN:start", END_NONE },
                { "back after a spot stop that came while shipping", PH_SHIP, { EV_BACK, EV_DONE }, 2,
                  "PREPARE:prepare RUN:start", END_NONE },
                { "a spot notice, the instance stopped while stopping, back: it resumes", PH_RUN,
                  { EV_SPOT, EV_BACK, EV_DONE, EV_EXP_ENDED, EV_NO_MORE }, 5,
                  "STOPPING:stop PREPARE:prepare RUN:start RUN:start SHIP:ship", END_FINISHED },
                { "booted, while stopping, into a run another instance ended", PH_STOPPING,
                  { EV_OVER, EV_EXP_ENDED, EV_DONE }, 3, "STOPPING:stop SHIP:ship EXIT:exit", END_OVER },
                { "booted, while shipping, into a run another instance ended", PH_SHIP, { EV_OVER, EV_DONE }, 2,
                  "SHIP:ship EXIT:exit", END_OVER },
                { "a cancel mid-experiment: stop, ship, exit", PH_RUN, { EV_CANCEL, EV_EXP_ENDED, EV_DONE, EV_DONE },
                  4, "STOPPING:stop SHIP:ship EXIT:exit DONE:none", END_CANCELLED },
                { "a cancel while stopping for a spot notice: the first end counts", PH_RUN,
                  { EV_SPOT, EV_CANCEL, EV_EXP_ENDED }, 3, "STOPPING:stop STOPPING:stop SHIP:ship", END_SPOT },
                { "an event RUN cannot meet: an internal error, through STOPPING and SHIP", PH_RUN,
                  { EV_DONE, EV_EXP_ENDED, EV_DONE }, 3, "STOPPING:bail SHIP:ship EXIT:exit", END_ERROR },
                { "a finished run still up", PH_DONE, { EV_BOOT, EV_DONE }, 2, "DONE:exit DONE:none", END_NONE },
                { "SIGTERM while shipping: the upload goes on", PH_SHIP, { EV_SIGTERM }, 1, "SHIP:ship", END_NONE },
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
        T_EXPECT("a phase out of range stays, with no answer", s.next == PH__MAX && s.action == A_HOLE);
        s = lc_transition(PH_RUN, EV__MAX);
        T_EXPECT("an event out of range: no answer", s.next == PH_RUN && s.action == A_HOLE);
}

/* Total: every (phase, event) pair has an answer written out; "nothing left to do" only where the run is DONE. */
static void test_total(void) {
        char holes[2048] = "";
        size_t o = 0;
        int none_elsewhere = 0;
        for (int p = 0; p < PH__MAX; p++)
                for (int e = 0; e < EV__MAX; e++) {
                        struct lc_step s = lc_transition((enum phase)p, (enum lc_event)e);
                        if (s.action == A_HOLE && o < sizeof holes)
                                o += (size_t)snprintf(holes + o, sizeof holes - o, " %s×%s", phase_name((enum phase)p),
                                                      lc_event_name((enum lc_event)e));
                        none_elsewhere += s.action == A_NONE && s.next != PH_DONE;
                }
        T_EXPECT_STR("no (phase, event) pair without an answer", holes, "");
        T_EXPECT("only DONE ends the driving", none_elsewhere == 0);
}

/* What each action can answer with (run.c): the events the table meets after it. */
static size_t answers(enum lc_action a, enum lc_event *out) {
        static const enum lc_event fetch[] = { EV_DONE, EV_FAILED, EV_SPOT, EV_SIGTERM, EV_MAX_RUNTIME, EV_CANCEL };
        static const enum lc_event start[] = { EV_EXP_ENDED, EV_NO_MORE, EV_FAILED, EV_SPOT, EV_SIGTERM,
                                               EV_MAX_RUNTIME, EV_OVER, EV_CANCEL };
        static const enum lc_event stop[] = { EV_EXP_ENDED };
        static const enum lc_event ship[] = { EV_DONE, EV_INCOMPLETE };
        static const enum lc_event exit_[] = { EV_DONE };
        const enum lc_event *t = NULL;
        size_t n = 0;
        switch (a) {
        case A_FETCH: case A_PREPARE: t = fetch; n = ARRAY_SIZE(fetch); break;
        case A_START: t = start; n = ARRAY_SIZE(start); break;
        case A_STOP: case A_BAIL: t = stop; n = ARRAY_SIZE(stop); break;
        case A_SHIP: t = ship; n = ARRAY_SIZE(ship); break;
        case A_EXIT: t = exit_; n = ARRAY_SIZE(exit_); break;
        default: break;
        }
        memcpy(out, t, n * sizeof *t);
        return n;
}

/* From (phase, event), following every answer each action can give: every path ends in a resumed RUN (A_START) or
 * in the exit action, never at a hole or a dead end, and never exits without having shipped (unless the start was
 * already past SHIP). Returns a description of the first bad path, or "". */
static void explore(enum phase p, enum lc_event ev, bool shipped, int depth, char *bad, size_t n) {
        if (bad[0])
                return;
        struct lc_step s = lc_transition(p, ev);
        if (depth > 12) {
                snprintf(bad, n, "%s×%s: no end in 12 steps", phase_name(p), lc_event_name(ev));
                return;
        }
        if (s.action == A_HOLE || (s.action == A_NONE && s.next != PH_DONE)) {
                snprintf(bad, n, "%s×%s: %s", phase_name(p), lc_event_name(ev), lc_action_name(s.action));
                return;
        }
        if (s.action == A_NONE || s.action == A_START)
                return; /* the run resumed, or it is DONE */
        if (s.action == A_EXIT) {
                if (!shipped)
                        snprintf(bad, n, "%s×%s: the exit before SHIP", phase_name(p), lc_event_name(ev));
                return; /* the exit action is where a path ends: its EV_DONE leads to DONE */
        }
        shipped |= s.action == A_SHIP;
        enum lc_event next[8];
        size_t k = answers(s.action, next);
        for (size_t i = 0; i < k; i++)
                explore(s.next, next[i], shipped, depth + 1, bad, n);
}

static void test_every_start_event_ends_well(void) {
        /* what start() can return: BOOT, OVER, CANCEL, FAILSAFE in any phase; BACK from STOPPING, SHIP and EXIT;
         * FAILED (a bad spec) in a new run */
        static const enum lc_event from_start[] = { EV_BOOT, EV_OVER, EV_CANCEL, EV_FAILSAFE, EV_BACK, EV_FAILED };
        char bad[256] = "";
        int paths = 0;
        for (int p = 0; p < PH__MAX; p++)
                for (size_t k = 0; k < ARRAY_SIZE(from_start); k++) {
                        enum lc_event ev = from_start[k];
                        if (ev == EV_BACK && (p < PH_STOPPING || p > PH_EXIT))
                                continue;
                        if (ev == EV_FAILED && p != PH_FETCH)
                                continue;
                        explore((enum phase)p, ev, p >= PH_EXIT, 0, bad, sizeof bad);
                        paths++;
                }
        T_EXPECT_STR("every event start() returns ends in a resumed RUN or SHIP then EXIT", bad, "");
        T_EXPECT("every start event explored", paths == 7 * 4 + 3 + 1);
        /* and from every phase, every event an action can answer with */
        bad[0] = 0;
        for (int p = PH_FETCH; p < PH_DONE; p++)
                for (int e = 0; e < EV__MAX; e++)
                        /* an action of phase p answered e: from SHIP on, that action shipped */
                        explore((enum phase)p, (enum lc_event)e, p >= PH_SHIP, 0, bad, sizeof bad);
        T_EXPECT_STR("every (phase, event) pair ends in a resumed RUN or SHIP then EXIT", bad, "");
}

static void test_fleet_role(void) {
        bool total = true, over_stays = true;
        for (int r = 0; r < ROLE__MAX; r++)
                for (int n = 0; n < FN__MAX; n++) {
                        enum fleet_role to = fleet_role_next((enum fleet_role)r, (enum fleet_news)n);
                        total &= (unsigned)to < ROLE__MAX && fleet_role_name(to) != NULL;
                        if (r == ROLE_ENDS || r == ROLE_FOLLOWS)
                                over_stays &= (int)to == r;
                }
        T_EXPECT("every role answers every news with a role", total);
        T_EXPECT("once the run is over (ends, follows) no news changes the role", over_stays);
        static const struct {
                const char *name;
                enum fleet_news news[4];
                size_t n;
                enum fleet_role want;
        } paths[] = {
                { "the last commit wins the end record: it ends the run", { FN_END_WON }, 1, ROLE_ENDS },
                { "another's end record came first: it follows", { FN_END_LOST }, 1, ROLE_FOLLOWS },
                { "booted into an ended run: it follows", { FN_OVER }, 1, ROLE_FOLLOWS },
                { "nothing left: it leaves", { FN_NOTHING_LEFT }, 1, ROLE_LEAVES },
                { "leaving, then the run ends before it left: it follows", { FN_NOTHING_LEFT, FN_OVER }, 2,
                  ROLE_FOLLOWS },
                { "an ender that hears the run is over still ends it", { FN_END_WON, FN_OVER, FN_END_LOST }, 3,
                  ROLE_ENDS },
                { "back after a spot stop: it works again", { FN_BACK }, 1, ROLE_WORKS },
        };
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
                enum fleet_role r = ROLE_WORKS;
                for (size_t k = 0; k < paths[i].n; k++)
                        r = fleet_role_next(r, paths[i].news[k]);
                T_EXPECT(paths[i].name, r == paths[i].want);
        }
        T_EXPECT("role names parse back", fleet_role_from_name("leaves") == ROLE_LEAVES &&
                                                  fleet_role_from_name("none") == -1 && !fleet_role_name(ROLE__MAX));
        T_EXPECT("out of range: the role stays", fleet_role_next(ROLE_LEAVES, FN__MAX) == ROLE_LEAVES);
}

static void test_fleet_end_plan(void) {
        static const struct {
                const char *name;
                struct fleet_facts f;
                bool needs_members;
                enum fleet_plan want;
        } cases[] = {
                { "a failure ends the run for all (no relaunch loop)", { END_ERROR, ROLE_WORKS, true, false }, false,
                  FP_END_ERROR },
                { "the failsafe too", { END_FAILSAFE, ROLE_WORKS, false, false }, false, FP_END_ERROR },
                { "max_runtime of a run in order: the run ends", { END_MAX_RUNTIME, ROLE_WORKS, false, false }, false,
                  FP_END_TIMEOUT },
                { "max_runtime in a sweep with others: leave", { END_MAX_RUNTIME, ROLE_WORKS, true, false }, true,
                  FP_LEAVE },
                { "max_runtime of the sweep's last member: the run ends", { END_MAX_RUNTIME, ROLE_WORKS, true, true },
                  true, FP_END_TIMEOUT },
                { "ended by another instance: follow", { END_OVER, ROLE_WORKS, true, false }, false, FP_FOLLOW },
                { "cancelled: end the run for all", { END_CANCELLED, ROLE_WORKS, true, false }, false,
                  FP_END_CANCELLED },
                { "a spot notice: the run goes on elsewhere", { END_SPOT, ROLE_WORKS, true, false }, false,
                  FP_NOTHING },
                { "a stop: it goes on after the restart", { END_STOPPED, ROLE_WORKS, false, false }, false,
                  FP_NOTHING },
                { "decided while running: an ender stays one", { END_ERROR, ROLE_ENDS, true, false }, false,
                  FP_NOTHING },
                { "decided while running: a leaver stays one", { END_MAX_RUNTIME, ROLE_LEAVES, true, false }, false,
                  FP_NOTHING },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_EXPECT(cases[i].name, fleet_end_plan(&cases[i].f) == cases[i].want);
                char n[200];
                snprintf(n, sizeof n, "%s: asks for the members only when it must", cases[i].name);
                T_EXPECT(n, fleet_plan_needs_members(&cases[i].f) == cases[i].needs_members);
        }
        T_EXPECT_STR("plan names", fleet_plan_name(FP_LEAVE), "leave");
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
                { "cancelled, whatever ran", END_CANCELLED, false, { ok, fail }, 2, OUT_CANCELLED },
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
                { "cancelled: on_exit, as asked", END_CANCELLED, OUT_CANCELLED, true, EXIT_ACTION_TERMINATE,
                  EXIT_ACTION_KEEP, X_ACTION, EXIT_ACTION_TERMINATE, false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct lc_exit_plan p = lc_exit_decide(cases[i].end, cases[i].o, cases[i].shipped, cases[i].on_exit,
                                                       cases[i].on_error);
                t_result(cases[i].name, p.kind == cases[i].kind && p.action == cases[i].action &&
                                                p.keep_disk == cases[i].keep_disk,
                         "kind %d action %s keep_disk %d", p.kind, exit_action_name(p.action), p.keep_disk);
        }
}

/* A gang member's part ended: every cell answered, and what each means. */
static void test_gang_plan(void) {
        bool total = true;
        for (int h = 0; h < GE__MAX; h++)
                for (int r0 = 0; r0 < 2; r0++)
                        for (int l = 0; l < 2; l++)
                                total &= gang_plan((enum gang_end)h, r0, l) != GS_HOLE &&
                                         gang_step_name(gang_plan((enum gang_end)h, r0, l)) != NULL;
        T_EXPECT("gang: the table is total, every step named", total && gang_plan(GE__MAX, true, true) == GS_HOLE);
        T_EXPECT("gang: rank 0 done: the experiment's done record", gang_plan(GE_EXIT_OK, true, false) == GS_COMMIT);
        T_EXPECT("gang: rank 1 done first: its slot given back finished, rank 0 commits",
                 gang_plan(GE_EXIT_OK, false, true) == GS_FINISHED);
        T_EXPECT("gang: a failure with attempts left stops every member and is tried again",
                 gang_plan(GE_EXIT_FAILED, true, false) == GS_STOP_ALL &&
                         gang_plan(GE_EXIT_FAILED, false, false) == GS_STOP_ALL);
        T_EXPECT("gang: rank 0's failure with none left is the experiment's",
                 gang_plan(GE_EXIT_FAILED, true, true) == GS_COMMIT);
        T_EXPECT("gang: rank 1's failure with none left: it stops the gang, rank 0 commits the member's failure",
                 gang_plan(GE_EXIT_FAILED, false, true) == GS_STOP_ALL &&
                         gang_plan(GE_MEMBER_FAILED, true, true) == GS_COMMIT_MEMBER);
        T_EXPECT("gang: stopped with the gang: rank 0 says so in its lease, the others leave",
                 gang_plan(GE_GANG_STOPPED, true, false) == GS_STOP_ALL &&
                         gang_plan(GE_GANG_STOPPED, false, true) == GS_LEAVE);
        T_EXPECT("gang: a lost lease ships nothing", gang_plan(GE_LOST, true, true) == GS_NOTHING);
        T_EXPECT("gang: names", !strcmp(gang_end_name(GE_MEMBER_FAILED), "member-failed") &&
                         !strcmp(gang_step_name(GS_STOP_ALL), "stop-all"));
}

int main(void) {
        test_paths();
        test_every_ending_ships_first();
        test_total();
        test_every_start_event_ends_well();
        test_fleet_role();
        test_fleet_end_plan();
        test_gang_plan();
        test_names();
        test_outcome();
        test_exit();
        return t_summary();
}
