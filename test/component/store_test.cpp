// The storage floor: verified record files (torn, corrupt, garbage, empty), group commit, and
// the history stores behind member-data.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "offerd/app/cli.hpp"
#include "offerd/codec/wire.hpp"
#include "offerd/store/journal_history_store.hpp"
#include "offerd/store/memory_history_store.hpp"
#include "offerd/store/record_log.hpp"
#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {
// A fresh directory, removed with everything in it at the end of the test.
struct temp_dir {
    std::string path = temp_path("store");
    temp_dir() {
        fs::remove(path);
        fs::create_directory(path);
    }
    ~temp_dir() { fs::remove_all(path); }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
}

struct reopened {
    std::vector<log_record> records;
    open_report report;
    std::unique_ptr<record_log> log;
};

reopened open_log(const std::string& path, fsync_policy policy = fsync_policy::always) {
    reopened r;
    auto log = record_log::open(path, policy, [&](const log_record& rec) { r.records.push_back(rec); });
    REQUIRE(log);
    r.log = std::move(log).value();
    r.report = r.log->report();
    return r;
}

std::vector<std::string> payloads(const std::vector<log_record>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(r.payload);
    return out;
}

// Writes `n` records to a fresh file; returns the file's bytes and each record's start offset.
struct written_file {
    std::string bytes;
    std::vector<std::size_t> starts;
    std::vector<std::string> payloads;
};

written_file write_records(const std::string& path, std::size_t n) {
    written_file w;
    {
        auto log = open_log(path).log;
        for (std::size_t i = 0; i < n; ++i) {
            w.starts.push_back(static_cast<std::size_t>(fs::file_size(path)));
            w.payloads.push_back(R"({"key":"k)" + std::to_string(i) + R"(","n":)" + std::to_string(i * 37) + "}");
            REQUIRE(log->append_sync(w.payloads.back()));
        }
    }
    w.bytes = read_file(path);
    return w;
}

// Appends one record after a reopen and checks that it, and what was kept, survive the next one.
void check_append_survives(const std::string& path, std::vector<std::string> kept) {
    {
        auto again = open_log(path);
        CHECK_FALSE(again.report.damaged());
        CHECK(payloads(again.records) == kept);
        REQUIRE(again.log->append_sync("after-the-repair"));
    }
    kept.push_back("after-the-repair");
    auto third = open_log(path);
    CHECK_FALSE(third.report.damaged());
    CHECK(payloads(third.records) == kept);
}

transaction txn(const std::string& member, int points, const std::string& ts = "2024-06-01T10:00:00Z") {
    return make_transaction(member, ts, "BUY", points, 1).value();
}

// run_bounded needs a default-constructible value; result<T> is not.
template <class T>
asio::awaitable<std::optional<T>> optional_of(asio::awaitable<T> op) {
    co_return co_await std::move(op);
}

// The payload coroutine c of thread t appends as its i-th record.
std::string label(std::size_t t, std::size_t c, std::size_t i) {
    std::ostringstream s;
    s << 't' << t << "-c" << c << '-' << i;
    return s.str();
}

// Appends label(t, c, 0..n-1) in order; the commit hook records the commit order (it runs on
// the log's sync thread only), the answers go to *acked under *m.
asio::awaitable<void> append_labels(record_log* log, std::size_t t, std::size_t c, std::size_t n, std::vector<std::string>* committed,
                                    std::mutex* m, std::map<std::string, std::uint64_t>* acked) {
    for (std::size_t i = 0; i < n; ++i) {
        const std::string p = label(t, c, i);
        record_log::commit_hook hook = [committed, p] { committed->push_back(p); };
        auto seq = co_await log->append(p, std::move(hook));
        std::lock_guard lock(*m);
        if (seq) (*acked)[p] = *seq;
    }
}

template <class T>
T await(asio::awaitable<T> op) {
    return *run_bounded(optional_of(std::move(op)));
}
}  // namespace

TEST_CASE("a record file reopens with every record, in order, with increasing sequence numbers", "[component]") {
    temp_dir dir;
    const auto w = write_records(dir.file("log"), 5);
    auto again = open_log(dir.file("log"));
    CHECK_FALSE(again.report.damaged());
    CHECK(again.report.kept == 5);
    CHECK(payloads(again.records) == w.payloads);
    for (std::size_t i = 0; i < again.records.size(); ++i) CHECK(again.records[i].seq == i + 1);
    REQUIRE(again.log->append_sync("six"));
    CHECK(again.log->append_sync("seven").value() == 7);  // numbering continues after the file's last record
}

TEST_CASE("a record file torn at any byte of its last record keeps the whole records and a later append survives", "[component]") {
    temp_dir dir;
    const std::string path = dir.file("log");
    const auto w = write_records(path, 4);
    const std::size_t last = w.starts.back();
    std::vector<std::string> whole(w.payloads.begin(), w.payloads.end() - 1);
    for (std::size_t cut = last; cut < w.bytes.size(); ++cut) {
        INFO("file cut at byte " << cut << " (last record starts at " << last << ")");
        write_bytes(path, w.bytes.substr(0, cut));
        for (const auto& e : fs::directory_iterator(dir.path))
            if (e.path().string() != path) fs::remove(e.path());
        auto opened = open_log(path);
        CHECK(payloads(opened.records) == whole);
        CHECK(opened.report.kept == 3);
        if (cut == last) {
            CHECK_FALSE(opened.report.damaged());
        } else {
            CHECK(opened.report.dropped == 1);
            CHECK(opened.report.first_bad_offset == last);
            CHECK(opened.report.bytes_set_aside == cut - last);
            CHECK(opened.report.set_aside_path == path + ".corrupt-1");
            CHECK(read_file(opened.report.set_aside_path) == w.bytes.substr(last, cut - last));
        }
        CHECK(fs::file_size(path) == last);
        opened.log.reset();
        check_append_survives(path, whole);
    }
}

TEST_CASE("a flipped byte in any record drops that record alone, set aside, and keeps the others", "[component]") {
    temp_dir dir;
    const std::string path = dir.file("log");
    const auto w = write_records(path, 4);
    for (std::size_t i = 0; i < w.starts.size(); ++i) {
        const std::size_t start = w.starts[i], end = i + 1 < w.starts.size() ? w.starts[i + 1] : w.bytes.size();
        std::vector<std::string> others = w.payloads;
        others.erase(others.begin() + static_cast<std::ptrdiff_t>(i));
        for (std::size_t at = start; at + 1 < end; ++at) {  // every byte but the newline
            INFO("record " << i << ", byte " << at);
            std::string bytes = w.bytes;
            bytes[at] = static_cast<char>(bytes[at] ^ 0xFF);
            write_bytes(path, bytes);
            for (const auto& e : fs::directory_iterator(dir.path))
                if (e.path().string() != path) fs::remove(e.path());
            auto opened = open_log(path);
            CHECK(payloads(opened.records) == others);
            CHECK(opened.report.kept == 3);
            CHECK(opened.report.dropped == 1);
            CHECK(opened.report.first_bad_offset == start);
            CHECK(opened.report.bytes_set_aside == end - start);
            CHECK(read_file(opened.report.set_aside_path) == bytes.substr(start, end - start));
            opened.log.reset();
            check_append_survives(path, others);
        }
    }
}

TEST_CASE("a lost newline between two records drops both as one damaged line", "[component]") {
    temp_dir dir;
    const std::string path = dir.file("log");
    const auto w = write_records(path, 4);
    std::string bytes = w.bytes;
    bytes[w.starts[2] - 1] = 'x';  // record 1's newline
    write_bytes(path, bytes);
    auto opened = open_log(path);
    CHECK(payloads(opened.records) == std::vector<std::string>{w.payloads[0], w.payloads[3]});
    CHECK(opened.report.dropped == 1);
    CHECK(opened.report.first_bad_offset == w.starts[1]);
    CHECK(describe(opened.report) == "offerd: " + path + ": dropped 1 damaged record(s) at offset " +
                                         std::to_string(w.starts[1]) + " (kept 2)");
}

TEST_CASE("garbage appended to a record file is set aside and a later append survives", "[component]") {
    temp_dir dir;
    const std::string path = dir.file("log");
    const auto w = write_records(path, 3);
    const std::string garbage = std::string("not a record\n\nC 9 1 forged\n") + '\0' + "\x01\x02 no newline";
    write_bytes(path, w.bytes + garbage);
    auto opened = open_log(path);
    CHECK(payloads(opened.records) == w.payloads);
    CHECK(opened.report.dropped == 4);
    CHECK(opened.report.first_bad_offset == w.bytes.size());
    CHECK(opened.report.bytes_set_aside == garbage.size());
    CHECK(read_file(opened.report.set_aside_path) == garbage);
    opened.log.reset();
    check_append_survives(path, w.payloads);
    // A second damaged open sets its bytes aside beside the first's.
    write_bytes(path, read_file(path) + "junk");
    CHECK(open_log(path).report.set_aside_path == path + ".corrupt-2");
}

TEST_CASE("an empty or missing record file opens empty and keeps what is appended", "[component]") {
    temp_dir dir;
    write_bytes(dir.file("empty"), "");
    for (const std::string name : {"empty", "missing"}) {
        auto opened = open_log(dir.file(name));
        CHECK(opened.records.empty());
        CHECK_FALSE(opened.report.damaged());
        opened.log.reset();
        check_append_survives(dir.file(name), {});
    }
}

TEST_CASE("records of the earlier P format are still read", "[component]") {
    temp_dir dir;
    // `P <seq> <crc32 of the payload> <payload>`, as the journal and outbox wrote them before.
    write_bytes(dir.file("log"), "P 1 1444654255 {\"a\":1}\n");
    auto opened = open_log(dir.file("log"));
    CHECK_FALSE(opened.report.damaged());
    REQUIRE(opened.records.size() == 1);
    CHECK(opened.records[0].payload == R"({"a":1})");
}

TEST_CASE("concurrent appends from several threads are all durable, each once, in one order", "[component]") {
    temp_dir dir;
    const std::string path = dir.file("log");
    constexpr std::size_t threads = 3, per_thread = 40, per_coroutine = 4;
    std::mutex m;
    std::vector<std::string> committed;                 // commit-hook order
    std::map<std::string, std::uint64_t> acknowledged;  // payload -> seq the append answered
    {
        auto log = open_log(path).log;
        std::vector<std::unique_ptr<asio::io_context>> ctxs;
        std::vector<std::thread> runners;
        for (std::size_t t = 0; t < threads; ++t) {
            ctxs.push_back(std::make_unique<asio::io_context>(1));
            for (std::size_t c = 0; c < per_thread / per_coroutine; ++c)
                asio::co_spawn(*ctxs.back(), append_labels(log.get(), t, c, per_coroutine, &committed, &m, &acknowledged), asio::detached);
        }
        for (auto& ctx : ctxs) runners.emplace_back([&ctx] { ctx->run_for(std::chrono::seconds(20)); });
        for (auto& r : runners) r.join();
        CHECK(log->appended() == threads * per_thread);
        CHECK(log->syncs() <= log->appended());
    }
    REQUIRE(acknowledged.size() == threads * per_thread);
    auto again = open_log(path);
    CHECK_FALSE(again.report.damaged());
    REQUIRE(again.records.size() == threads * per_thread);
    CHECK(payloads(again.records) == committed);
    std::map<std::string, std::size_t> position;
    for (std::size_t i = 0; i < again.records.size(); ++i) {
        const auto& r = again.records[i];
        if (i) CHECK(r.seq > again.records[i - 1].seq);
        CHECK(acknowledged.at(r.payload) == r.seq);
        position[r.payload] = i;
    }
    // Each coroutine's appends are in the file in the order it made them.
    for (std::size_t t = 0; t < threads; ++t)
        for (std::size_t c = 0; c < per_thread / per_coroutine; ++c)
            for (std::size_t i = 1; i < per_coroutine; ++i) CHECK(position.at(label(t, c, i - 1)) < position.at(label(t, c, i)));
}

TEST_CASE("appends that arrive while an fdatasync runs share the next one", "[component]") {
    temp_dir dir;
    auto log = open_log(dir.file("log")).log;
    constexpr std::size_t followers = 30;
    // The first record's commit hook holds the sync thread until every follower has queued.
    std::mutex m;
    std::condition_variable cv;
    bool release = false;
    std::atomic<std::size_t> done{0};
    std::thread first([&] {
        const auto r = log->append_sync("first", [&] {
            std::unique_lock lock(m);
            cv.wait_for(lock, std::chrono::seconds(10), [&] { return release; });
        });
        if (r) ++done;
    });
    // Wait (bounded) until the first record's batch is being written, holding the sync thread.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (log->appended() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    std::vector<std::thread> others;
    for (std::size_t i = 0; i < followers; ++i)
        others.emplace_back([&, i] {
            if (log->append_sync("follower-" + std::to_string(i))) ++done;
        });
    // Wait (bounded) until the followers' appends are queued behind the held batch.
    until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (log->queued() < followers && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    CHECK(log->queued() == followers);
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    first.join();
    for (auto& t : others) t.join();
    CHECK(done == followers + 1);
    CHECK(log->appended() == followers + 1);
    CHECK(log->syncs() == 2);
}

TEST_CASE("the memory history store stores a keyed write once and refuses the key with another transaction", "[component]") {
    memory_history_store store;
    const auto stored = await(store.append(txn("H1", 10), "k1", {}));
    REQUIRE(stored);
    CHECK(stored->what == append_outcome::kind::stored);
    const auto again = await(store.append(txn("H1", 10), "k1", {}));
    REQUIRE(again);
    CHECK(again->what == append_outcome::kind::duplicate);
    CHECK(json::parse(again->body) == json::parse(stored->body));
    const auto other = await(store.append(txn("H1", 11), "k1", {}));
    REQUIRE(other);
    CHECK(other->what == append_outcome::kind::conflict);
    CHECK(await(store.append(txn("H1", 10), "", {}))->what == append_outcome::kind::stored);  // no key: a new write
    CHECK(store.history("H1").size() == 2);
    CHECK(store.transactions() == 2);
    CHECK(store.members() == 1);
    std::string body;
    CHECK(await(store.history_json("H1", body)).value());
    CHECK(json::parse(body).as_array().size() == 2);
    std::string none;
    CHECK_FALSE(await(store.history_json("nobody", none)).value());
    CHECK(none.empty());
}

TEST_CASE("the memory history store forgets keys beyond its capacity", "[component]") {
    memory_history_store store(history_keys_config{std::chrono::milliseconds(600'000), 16});
    for (int i = 0; i < 64; ++i) REQUIRE(await(store.append(txn("CAP", i), "key-" + std::to_string(i), {})));
    CHECK(await(store.append(txn("CAP", 0), "key-0", {}))->what == append_outcome::kind::stored);
}

TEST_CASE("a journal replay restores the histories and the keys", "[component]") {
    temp_dir dir;
    const std::string path = dir.file("journal");
    std::string first_body;
    {
        auto j = journal_history_store::open(path, fsync_policy::always, std::make_shared<memory_history_store>());
        REQUIRE(j);
        auto a = await((*j)->append(txn("J1", 1), "ka", {"2024-06-01 10:00:00", "buy"}));
        REQUIRE(a);
        CHECK(a->what == append_outcome::kind::stored);
        first_body = a->body;
        REQUIRE(await((*j)->append(txn("J2", 2), "kb", {})));
        REQUIRE(await((*j)->append(txn("J1", 3, "2024-06-02T10:00:00Z"), "", {})));
        CHECK(await((*j)->append(txn("J1", 1), "ka", {}))->what == append_outcome::kind::duplicate);
        CHECK((*j)->transactions() == 3);
        CHECK((*j)->log().appended() == 3);
    }
    auto j = journal_history_store::open(path, fsync_policy::always, std::make_shared<memory_history_store>());
    REQUIRE(j);
    CHECK_FALSE((*j)->report().damaged());
    CHECK((*j)->history("J1") == std::vector<transaction>{txn("J1", 1), txn("J1", 3, "2024-06-02T10:00:00Z")});
    CHECK((*j)->history("J2") == std::vector<transaction>{txn("J2", 2)});
    CHECK((*j)->members() == 2);
    const auto dup = await((*j)->append(txn("J1", 1), "ka", {}));
    REQUIRE(dup);
    CHECK(dup->what == append_outcome::kind::duplicate);
    CHECK(json::parse(dup->body) == json::parse(encode_transaction(txn("J1", 1))));  // the journal keeps the normalized form
    CHECK(await((*j)->append(txn("J2", 9), "kb", {}))->what == append_outcome::kind::conflict);
    CHECK((*j)->transactions() == 3);
}

TEST_CASE("member-data marks an answer replayed by Idempotency-Key", "[component]") {
    test_app app(static_cast<std::uint8_t>(role::member_data));
    const auto port = app.port(role::member_data);
    const auto first = post(port, "/member_data", txn_body("IR"), {{"Idempotency-Key", "ir-1"}});
    REQUIRE(first.status == 200);
    CHECK(first.headers.count("Idempotent-Replayed") == 0);
    const auto again = post(port, "/member_data", txn_body("IR"), {{"Idempotency-Key", "ir-1"}});
    REQUIRE(again.status == 200);
    CHECK(again.headers.at("Idempotent-Replayed") == "true");
    CHECK(json::parse(again.body) == json::parse(first.body));
    CHECK(app.rt().store()->history("IR").size() == 1);
}

TEST_CASE("member-data warns about a torn journal and a write answered after the restart survives the next", "[component]") {
    temp_dir dir;
    const std::string journal = dir.file("journal");
    const auto with_journal = [&](app_config& c) { c.member_data.journal = journal; };
    constexpr auto md = static_cast<std::uint8_t>(role::member_data);
    {
        test_app app(md, with_journal);
        for (int i = 0; i < 5; ++i) REQUIRE(post(app.port(role::member_data), "/member_data", txn_body("TJ", "2024-06-01T10:00:00Z", "BUY", i)).status == 200);
    }
    const std::string bytes = read_file(journal);
    write_bytes(journal, bytes.substr(0, bytes.size() - 10));  // the last record torn
    {
        test_app app(md, with_journal);
        const auto warned = app.events("record_file_damaged");
        REQUIRE(warned.size() == 1);
        CHECK(warned[0].at("level") == "warn");
        CHECK(warned[0].at("path").as_string() == journal);
        CHECK(warned[0].at("kept") == 4);
        CHECK(warned[0].at("dropped") == 1);
        CHECK(app.rt().store()->history("TJ").size() == 4);
        REQUIRE(post(app.port(role::member_data), "/member_data", txn_body("TJ", "2024-06-01T10:00:00Z", "BUY", 99)).status == 200);
    }
    test_app app(md, with_journal);
    CHECK(app.events("record_file_damaged").empty());
    const auto h = app.rt().store()->history("TJ");
    REQUIRE(h.size() == 5);
    CHECK(h.back().points == 99);
}

TEST_CASE("the journal fsync flag takes always or never, and the old boolean form", "[component]") {
    const auto env = [](const char*) -> const char* { return nullptr; };
    CHECK(parse_serve_command({}, env).config->member_data.journal_fsync == fsync_policy::always);
    CHECK(parse_serve_command({"--member-data-journal-fsync", "never"}, env).config->member_data.journal_fsync == fsync_policy::never);
    CHECK(parse_serve_command({"--member-data-journal-fsync=always"}, env).config->member_data.journal_fsync == fsync_policy::always);
    CHECK(parse_serve_command({"--member-data-journal-fsync"}, env).config->member_data.journal_fsync == fsync_policy::always);
    CHECK(parse_serve_command({"--member-data-journal-fsync=false"}, env).config->member_data.journal_fsync == fsync_policy::never);
    CHECK(parse_serve_command({"--member-data-journal-fsync", "sometimes"}, env).exit_code == 2);
}

TEST_CASE("a duplicate of a keyed write still being journaled is answered only once that write is readable", "[component]") {
    temp_dir dir;
    auto j = journal_history_store::open(dir.file("journal"), fsync_policy::always, std::make_shared<memory_history_store>());
    REQUIRE(j);
    auto store = *j;
    asio::io_context io(1);
    std::size_t seen_by_duplicate = 99;
    std::optional<append_outcome::kind> first, second;
    // Both on one thread: the first claims the key and waits for its fdatasync; the second
    // arrives meanwhile. Answered "duplicate" before the first is stored, a reader told so
    // would miss the transaction.
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        transaction t = txn("DUP", 1);  // named: g++ 12 destroys temporaries beside co_await twice
        std::string key = "k-dup";
        transaction_text as_sent;
        auto a = co_await store->append(std::move(t), std::move(key), std::move(as_sent));
        if (a) first = a->what;
    }, asio::detached);
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        transaction t = txn("DUP", 1);  // named: g++ 12 destroys temporaries beside co_await twice
        std::string key = "k-dup";
        transaction_text as_sent;
        auto b = co_await store->append(std::move(t), std::move(key), std::move(as_sent));
        if (b) second = b->what;
        seen_by_duplicate = store->history("DUP").size();
    }, asio::detached);
    io.run_for(std::chrono::seconds(10));
    REQUIRE(first);
    REQUIRE(second);
    CHECK(*first == append_outcome::kind::stored);
    CHECK(*second == append_outcome::kind::duplicate);
    CHECK(seen_by_duplicate == 1);
    CHECK(store->transactions() == 1);
}
