// A verified record file: every record is checked on open, damage is cut off, set aside and
// reported, and appends from many threads share one fdatasync (group commit).
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "offerd/domain/errors.hpp"
#include "offerd/store/append_file.hpp"

namespace offerd {

namespace asio = boost::asio;

class logger;

// When an acknowledged append is durable.
enum class fsync_policy {
    always,  // fdatasync'ed before the append completes: survives a power loss. Appends waiting
             // together share one fdatasync (group commit).
    never,   // written before the append completes: survives a crash of the process; the OS
             // writes it to the disk later (a power loss can lose the last seconds).
};
const char* to_string(fsync_policy p) noexcept;
// "always" or "never"; also the boolean forms true/false, on/off, yes/no, 1/0 (true = always).
result<fsync_policy> parse_fsync_policy(std::string_view s);

// One record: an opaque payload (one line: no '\n') and the sequence number the log gave it.
struct log_record {
    std::uint64_t seq = 0;
    std::string payload;
};

// What record_log::open found and did.
struct open_report {
    std::string path;
    std::size_t kept = 0;                 // whole records, handed to the visitor
    std::size_t dropped = 0;              // damaged lines: a torn tail, a bad checksum, garbage
    std::uint64_t first_bad_offset = 0;   // byte offset of the first damaged line (when dropped > 0)
    std::uint64_t bytes_set_aside = 0;    // the damaged lines' bytes, copied to set_aside_path
    std::string set_aside_path;           // "<path>.corrupt-<n>", "" when nothing was damaged
    bool damaged() const noexcept { return dropped != 0; }
};
// "offerd: <path>: dropped N damaged record(s) at offset X (kept M)"
std::string describe(const open_report& r);
// When r.damaged(): a `record_file_damaged` warn event (every field of r) and describe(r) as one
// line on stderr. Nothing otherwise.
void report_damage(const open_report& r, logger& log);

// File format, one record per line: `C <seq> <crc32> <payload>\n`, the CRC-32 over
// `<seq> <payload>`, so a flipped byte anywhere in a line is found. Lines of the earlier format
// `P <seq> <crc32> <payload>\n` (CRC over the payload only) are still read. A record is whole
// only with its newline. Sequence numbers are given by the log: strictly increasing, continuing
// after the highest one in the file.
//
// Thread-safety: every member may be called from any thread. One mutex orders the appends, so
// file order = sequence order = the order of the commit hooks. Under `always` a sync thread
// owned by the log does the writes and the fdatasync: a caller only queues its line under the
// mutex (never held across I/O) and is resumed on its own executor when its batch is durable.
// While one fdatasync runs, new appends queue up; the next batch writes them all with one
// write() and covers them with one fdatasync. A writer thread rather than a leader among the
// callers, because a leader would block its worker's io_context (every connection on it) for
// the whole fdatasync. Under `never` the caller writes its line itself, under the mutex.
//
// After a failed fdatasync the file's state is unknown (the kernel may have dropped the dirty
// pages): every later append fails until the log is opened again, which verifies the file.
class record_log {
public:
    using visitor = std::function<void(const log_record&)>;
    // Runs exactly once per successful append, in sequence order, once the record is durable
    // per policy and before the append completes; on the sync thread (always) or the caller's
    // (never). Keep it short, and do not call the log from it.
    using commit_hook = std::function<void()>;

    // Reads and verifies every record of path (created when missing), handing each whole one
    // to `each` in file order. Damaged lines are copied to `<path>.corrupt-<n>` (the first free
    // n) and removed: a damaged tail by truncating the file, damage before whole records by
    // rewriting it (temporary file + rename). The repair is fdatasync'ed whatever the policy.
    // Fails (errc::internal, detail naming the path) only when the file cannot be read,
    // written or repaired.
    static result<std::unique_ptr<record_log>> open(std::string path, fsync_policy policy, const visitor& each);
    // Completes every queued append (durably), then stops the sync thread.
    ~record_log();
    record_log(const record_log&) = delete;
    record_log& operator=(const record_log&) = delete;

    // Appends payload (must not contain '\n') and completes, on the caller's executor, with its
    // sequence number once it is durable per policy. Fails when the write or the fdatasync
    // fails (the record may or may not be in the file: it was not acknowledged).
    asio::awaitable<result<std::uint64_t>> append(std::string payload, commit_hook on_commit = {});
    // The same for callers outside a coroutine: blocks the calling thread until done.
    result<std::uint64_t> append_sync(std::string payload, commit_hook on_commit = {});
    // Replaces the whole file with these records (seq strictly increasing), atomically (a
    // temporary file, fdatasync, rename). Waits for queued appends first.
    result<std::monostate> rewrite(std::span<const log_record> records);
    // Empties the file (fdatasync'ed under `always`). Waits for queued appends first.
    result<std::monostate> truncate();

    const open_report& report() const noexcept { return report_; }
    fsync_policy policy() const noexcept { return policy_; }
    const std::string& path() const noexcept { return report_.path; }
    // Records written since open, and fdatasync calls made for them: with concurrent appends
    // under `always`, syncs() < appended().
    std::uint64_t appended() const noexcept { return appended_.load(std::memory_order_relaxed); }
    std::uint64_t syncs() const noexcept { return syncs_.load(std::memory_order_relaxed); }
    // Appends waiting for the next batch (always 0 under `never`).
    std::size_t queued() const;

private:
    struct waiter;
    record_log(append_file file, fsync_policy policy, open_report report, std::uint64_t last_seq);
    result<std::uint64_t> write_now(std::string_view payload, const commit_hook& on_commit);
    void enqueue(std::string_view payload, waiter w);
    void run_syncer();
    void wait_idle(std::unique_lock<std::mutex>& lock);

    const fsync_policy policy_;
    const open_report report_;
    std::atomic<std::uint64_t> appended_{0};
    std::atomic<std::uint64_t> syncs_{0};
    mutable std::mutex mutex_;
    std::condition_variable wake_;  // the sync thread: work queued, or stopping
    std::condition_variable idle_;  // rewrite/truncate: a batch finished
    // Guarded by mutex_, except file_, which the sync thread uses without it while in_flight_.
    append_file file_;
    std::uint64_t last_seq_ = 0;
    std::vector<waiter> queue_;   // the next batch, in sequence order
    std::string pending_;         // its lines
    bool in_flight_ = false;
    bool stopping_ = false;
    std::optional<failure> broken_;  // set after a failed fdatasync or a partial write left behind
    std::thread syncer_;             // only under `always`
};

}  // namespace offerd
