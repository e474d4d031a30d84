// `offerd stream`: replays a CSV against the orchestrator, in CSV order, windowed, never two
// requests in flight for the same member.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "offerd/domain/errors.hpp"

namespace offerd {

// What stream prints per row on stdout: text prints each answer body; jsonl prints one JSON
// object per row of every outcome (see run_stream).
enum class stream_output { text, jsonl };

struct stream_config {
    std::string csv = "member_data.csv";           // "-": standard input
    std::string target = "http://127.0.0.1:8000";  // the orchestrator's base URL
    std::string path = "/member/offer";            // or /member_data to seed member-data directly
    std::size_t concurrency = 16;                  // requests in flight at most
    bool quiet = false;                            // no output for the rows answered 200
    stream_output output = stream_output::text;
    std::string summary_json;                      // also write format_summary_json here ("-": stdout; empty: nowhere)
    std::chrono::milliseconds timeout{10'000};     // per request
    int retries = 3;                               // extra attempts after a timeout, 429 or 5xx
    std::chrono::milliseconds backoff{100};        // first retry pause; doubles each time (full jitter)
    int realtime_priority = 0;                     // > 0: `offerd stream` runs its thread SCHED_FIFO when permitted (0: never), before run_stream
    std::size_t max_pending = 4096;                // rows read ahead of the oldest unanswered one (bounds memory)
    std::string key_file;                          // credential sent as Authorization: Bearer (empty: none)
    std::string ca_file;                           // PEM CAs an https target is verified against (empty: the system store)
};

struct stream_summary {
    std::uint64_t rows_read = 0;  // data records in the file
    std::uint64_t sent = 0;
    std::uint64_t ok = 0;         // answered 200 for the first time
    std::uint64_t replayed = 0;   // answered 200 with Idempotent-Replayed (a rerun of a row answered before)
    std::uint64_t skipped = 0;    // malformed rows, never sent
    std::uint64_t failed = 0;     // sent but not answered 200 (after the retries)
    std::uint64_t held = 0;       // not sent: an earlier row of the same member failed
    std::uint64_t retried = 0;    // extra attempts made
    double elapsed_s = 0;
    double p50_ms = 0, p99_ms = 0;
    bool csv_truncated = false;   // a CSV syntax error stopped reading early
    bool interrupted = false;     // a stop signal ended the stream early
    std::map<unsigned, std::uint64_t> statuses;     // final HTTP status per sent row; 0: no answer
    std::map<std::string, std::uint64_t> offers;    // offer mix of the answered rows

    double rows_per_s() const noexcept { return elapsed_s > 0 ? static_cast<double>(sent) / elapsed_s : 0.0; }
};

// Progress on err while streaming: a live line rewritten in place on a terminal, a plain line
// every few seconds otherwise.
struct progress_options {
    bool terminal = false;
    std::chrono::milliseconds every{5'000};
};

// Prints each answer (unless quiet) to out, in CSV order; skipped rows and failures to err,
// one line each naming the line number and memberId. With stream_output::jsonl, out gets one
// JSON object per row instead, of every outcome, in CSV order (quiet: not for rows answered 200):
// {"line", "memberId", "outcome": ok|replayed|failed|skipped|held, "status" (null: not sent or
// no answer), "offer" (null unless answered 200), "latency_ms" (null: not sent), "replayed",
// "error" (not for ok/replayed)}; err still gets the lines of skipped and failed rows.
// A row that fails for good holds back every
// later row of its member (reported on err as not sent, counted as held), so a rerun of the same
// file, whose rows carry the same Idempotency-Keys, sends them in CSV order after it; other
// members go on. Fails (errc::invalid_field) when the file cannot be read or has no usable
// header, and (errc::upstream_unavailable) when the target is unreachable before the first row;
// per-row failures are counted, not returned. The file is read in chunks as rows are sent, after
// the target answered GET /health; memory stays bounded by cfg.max_pending rows. Each row's
// Idempotency-Key is the hash of the file's bytes up to that row plus its line number.
// After one of stop_signals (e.g. SIGINT) no further row is sent and no retry made; the rows in
// flight are awaited and the summary returned with interrupted set; a second signal gets the
// default action.
result<stream_summary> run_stream(const stream_config& cfg, std::ostream& out, std::ostream& err,
                                  const progress_options& progress = {}, const std::vector<int>& stop_signals = {});

// The exit status of a finished stream: 130 when interrupted, else 0 when every valid row was
// answered 200 (replays included), else 1.
int stream_exit_status(const stream_summary& s) noexcept;

// The closing block: a `statuses:` line, an `offers:` line, then the one-line `summary:` last.
std::string format_summary(const stream_summary& s);

// The summary as one JSON object (--summary-json): the counts of the summary line, "statuses"
// keyed by status ("no_answer" for none), "offers", and "exit_status".
std::string format_summary_json(const stream_summary& s);


}  // namespace offerd
