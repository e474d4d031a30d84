// Cluster mode with the real parts: scripts/cluster.sh starts PostgreSQL (Debian's), the
// services, orchestrator replicas on it and HAProxy (Debian's) on 127.0.0.1, and stops them by
// PID. What the tests check is what a user of several replicas is promised: every accepted
// transaction counted once, in order per member, whichever replica took it.
#include <signal.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "offerd/codec/wire.hpp"
#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
const std::string binary = OFFERD_BINARY;
const std::string source = OFFERD_SOURCE_DIR;

bool port_free(int port) {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io);
    boost::system::error_code ec;
    a.open(asio::ip::tcp::v4(), ec);
    a.bind({asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)}, ec);
    return !ec;
}

// A base port with base..base+40 free, below the ephemeral range.
int pick_base() {
    std::mt19937 rng(std::random_device{}());
    for (int attempt = 0; attempt < 200; ++attempt) {
        const int base = 20'000 + static_cast<int>(rng() % 1'200) * 10;
        bool ok = true;
        for (int p = base; p <= base + 40 && ok; ++p) ok = port_free(p);
        if (ok) return base;
    }
    throw std::runtime_error("no free port range below 32768");
}

class cluster {
public:
    explicit cluster(int replicas, std::vector<std::string> extra = {}) : dir_(temp_path("cluster")), base_(pick_base()) {
        std::vector<std::string> up{"up", "--replicas", std::to_string(replicas), "--port", std::to_string(base_)};
        up.insert(up.end(), extra.begin(), extra.end());
        auto r = script(up, std::chrono::seconds(240));
        if (r.exit_code != 0) {
            script({"down"}, std::chrono::seconds(60));
            FAIL("scripts/cluster.sh up failed (" << r.exit_code << "):\n" << r.err);
        }
        info_ = json::parse(read_file(dir_ + "/cluster.json")).as_object();
    }
    ~cluster() { script({"down"}, std::chrono::seconds(60)); }

    run_output script(std::vector<std::string> args, std::chrono::milliseconds limit) {
        std::vector<std::string> argv{"/usr/bin/env", "CLUSTER_DIR=" + dir_, "OFFERD_BIN=" + binary, source + "/scripts/cluster.sh"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_process(argv, limit);
    }
    std::uint16_t lb_port() const { return static_cast<std::uint16_t>(base_); }
    std::uint16_t member_data_port() const { return static_cast<std::uint16_t>(base_ + 2); }
    std::uint16_t replica_port(int k) const { return static_cast<std::uint16_t>(base_ + 10 + k); }
    std::string replica_log(int k) const { return dir_ + "/replica-" + std::to_string(k) + ".log"; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(base_); }
    const std::string& dir() const { return dir_; }

    // psql -At: rows as lines, columns separated by '|'.
    std::string sql(const std::string& statement) {
        auto r = run_process({"/usr/bin/psql", std::string(info_.at("postgres_url").as_string()), "-At", "-c", statement},
                             std::chrono::seconds(30));
        if (r.exit_code != 0) throw std::runtime_error("psql failed: " + r.err);
        while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
        return r.out;
    }

    // The named events of replica k's JSON-lines log.
    std::vector<json::object> events(int k, std::string_view name) const {
        std::vector<json::object> out;
        std::ifstream in(replica_log(k));
        for (std::string line; std::getline(in, line);) {
            boost::system::error_code ec;
            auto v = json::parse(line, ec);
            if (!ec && v.is_object() && v.as_object().contains("event") && v.as_object().at("event").as_string() == name)
                out.push_back(v.as_object());
        }
        return out;
    }

    double metric(int k, const std::string& sample) {
        auto r = get(replica_port(k), "/metrics");
        std::istringstream in(r.body);
        for (std::string line; std::getline(in, line);)
            if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
        return 0;
    }

private:
    std::string dir_;
    int base_;
    json::object info_;
};

// POST /member/offer, retrying 503 (the fence gave up, Retry-After) and HAProxy's 502/504 the
// way a client does; the last answer.
http_result offer(std::uint16_t port, const std::string& body, const std::map<std::string, std::string>& headers = {}) {
    http_result r;
    for (int attempt = 0; attempt < 40; ++attempt) {
        r = post(port, "/member/offer", body, headers);
        if (r.status != 503 && r.status != 502 && r.status != 504 && r.status != 0) return r;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return r;
}

// Waits until every member's log rows reached member-data (the drainers), at most 20 s.
void wait_delivered(cluster& c) {
    for (int i = 0; i < 200 && c.sql("SELECT count(*) FROM members WHERE delivered_seq < last_seq") != "0"; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

// Members whose history in member-data is not exactly their valid CSV rows, once each, in CSV order.
std::size_t members_not_exact(cluster& c, const std::string& csv) {
    std::map<std::string, std::vector<std::string>> want;
    for (const auto& t : read_valid_rows(csv)) want[t.member_id].push_back(encode_transaction(t));
    std::size_t wrong = 0;
    for (const auto& [member, rows] : want) {
        auto h = get(c.member_data_port(), "/member_data/" + member);
        std::vector<std::string> got;
        const json::value history = h.status == 200 ? json::parse(h.body) : json::value(json::array());
        for (const auto& v : history.as_array())
            if (auto t = decode_transaction(json::serialize(v))) got.push_back(encode_transaction(*t));
        if (got != rows) {
            UNSCOPED_INFO(member << ": " << got.size() << " stored, " << rows.size() << " in the CSV");
            ++wrong;
        }
    }
    return wrong;
}

std::string minute_ts(int i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "2024-06-01T%02d:%02d:00Z", 10 + i / 60, i % 60);
    return buf;
}
}  // namespace

TEST_CASE("cluster: two replicas deciding one member at once: the fence keeps every history exact", "[e2e][cluster]") {
    cluster c(2);
    constexpr int n = 50;
    std::vector<unsigned> statuses(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            statuses[static_cast<std::size_t>(i)] = offer(c.replica_port(1 + i % 2), txn_body("SPLIT", minute_ts(i))).status;
        });
    for (auto& t : threads) t.join();
    for (unsigned s : statuses) CHECK(s == 200);

    CHECK(c.sql("SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM member_log WHERE member_id = 'SPLIT'") == "50|1|50|50");
    CHECK(c.sql("SELECT last_seq FROM members WHERE member_id = 'SPLIT'") == "50");
    // The k-th accepted decision saw exactly the k-1 transactions accepted before it.
    std::multiset<std::int64_t> seen;
    for (int k = 1; k <= 2; ++k)
        for (const auto& e : c.events(k, "offer"))
            if (e.at("memberId").as_string() == "SPLIT" && e.contains("history_len") && e.at("status").to_number<int>() == 200)
                seen.insert(e.at("history_len").to_number<std::int64_t>());
    std::multiset<std::int64_t> expected;
    for (int k = 0; k < n; ++k) expected.insert(k);
    CHECK(seen == expected);
    // Both replicas took some, and the fence refused stale decisions along the way.
    CHECK(c.metric(1, "offerd_state_appends_total{outcome=\"appended\"}") > 0);
    CHECK(c.metric(2, "offerd_state_appends_total{outcome=\"appended\"}") > 0);
    CHECK(c.metric(1, "offerd_state_appends_total{outcome=\"stale\"}") + c.metric(2, "offerd_state_appends_total{outcome=\"stale\"}") > 0);
    // member-data got each once, in seq order.
    auto h = get(c.member_data_port(), "/member_data/SPLIT");
    REQUIRE(h.status == 200);
    CHECK(json::parse(h.body).as_array().size() == static_cast<std::size_t>(n));

    SECTION("an Idempotency-Key answered by one replica is replayed by the other") {
        const std::string body = txn_body("KEYED", "2024-06-02T10:00:00Z");
        auto a = offer(c.replica_port(1), body, {{"Idempotency-Key", "k-1"}});
        REQUIRE(a.status == 200);
        auto b = offer(c.replica_port(2), body, {{"Idempotency-Key", "k-1"}});
        CHECK(b.status == 200);
        CHECK(b.body == a.body);
        CHECK(b.headers["Idempotent-Replayed"] == "true");
        auto other = offer(c.replica_port(2), txn_body("KEYED", "2024-06-02T11:00:00Z"), {{"Idempotency-Key", "k-1"}});
        CHECK(other.status == 422);
        // The same key at both replicas at once appends once.
        const std::string body2 = txn_body("KEYED", "2024-06-02T12:00:00Z");
        http_result r1, r2;
        std::thread t1([&] { r1 = offer(c.replica_port(1), body2, {{"Idempotency-Key", "k-2"}}); });
        std::thread t2([&] { r2 = offer(c.replica_port(2), body2, {{"Idempotency-Key", "k-2"}}); });
        t1.join();
        t2.join();
        CHECK(r1.status == 200);
        CHECK(r2.status == 200);
        CHECK(r1.body == r2.body);
        CHECK(c.sql("SELECT count(*) FROM member_log WHERE member_id = 'KEYED'") == "2");
        auto kh = get(c.member_data_port(), "/member_data/KEYED");
        REQUIRE(kh.status == 200);
        CHECK(json::parse(kh.body).as_array().size() == 2);
    }
}

TEST_CASE("cluster: a replica that dies between commit and answer: the client's retry is replayed by another", "[e2e][cluster]") {
    cluster c(2);
    REQUIRE(c.script({"kill-replica", "2"}, std::chrono::seconds(30)).exit_code == 0);
    // Replica 2 again, now exiting right after it commits a transaction of CRASH.
    auto started = run_process({"/usr/bin/env", "OFFERD_TEST_CRASH_AFTER_COMMIT=CRASH", "CLUSTER_DIR=" + c.dir(), "OFFERD_BIN=" + binary,
                                source + "/scripts/cluster.sh", "start-replica", "2"},
                               std::chrono::seconds(60));
    REQUIRE(started.exit_code == 0);
    const std::string body = txn_body("CRASH", "2024-06-03T10:00:00Z");
    auto lost = post(c.replica_port(2), "/member/offer", body, {{"Idempotency-Key", "crash-1"}});
    CHECK(lost.status == 0);  // the connection died with the process: no answer
    CHECK(c.sql("SELECT count(*) FROM member_log WHERE member_id = 'CRASH'") == "1");
    auto retried = offer(c.replica_port(1), body, {{"Idempotency-Key", "crash-1"}});
    CHECK(retried.status == 200);
    CHECK(retried.headers["Idempotent-Replayed"] == "true");
    CHECK(c.sql("SELECT count(*) FROM member_log WHERE member_id = 'CRASH'") == "1");
    // The committed row reaches member-data once (replica 1's drainer takes the dead one's rows).
    std::size_t stored = 0;
    for (int i = 0; i < 100 && stored == 0; ++i) {
        auto h = get(c.member_data_port(), "/member_data/CRASH");
        if (h.status == 200) stored = json::parse(h.body).as_array().size();
        else std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(stored == 1);
}

TEST_CASE("cluster: a stream through HAProxy over three replicas survives kill -9 of one: every row once, in order", "[e2e][cluster]") {
    cluster c(3);
    const std::string csv = temp_path("cluster-rows") + ".csv";
    REQUIRE(run_process({binary, "generate", "--rows", "1500", "--seed", "11", "--members", "120", "-o", csv}, std::chrono::seconds(30))
                .exit_code == 0);
    child_process streamer({binary, "stream", "--csv", csv, "--target", c.url(), "--concurrency", "8", "--retries", "20", "--quiet"});
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    REQUIRE(c.script({"kill-replica", "2"}, std::chrono::seconds(30)).exit_code == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    REQUIRE(c.script({"start-replica", "2"}, std::chrono::seconds(60)).exit_code == 0);
    const int first = streamer.stop(0, std::chrono::seconds(180));
    INFO(streamer.err());
    // Rerun: what failed for good the first time goes in now, what went in is replayed.
    auto rerun = run_process({binary, "stream", "--csv", csv, "--target", c.url(), "--concurrency", "8", "--retries", "20", "--quiet"},
                             std::chrono::seconds(180));
    INFO("first run exit " << first << "; rerun: " << rerun.err);
    CHECK(rerun.exit_code == 0);

    // What waits in the member log (a delivery cut by the kill) is delivered by the drainers.
    wait_delivered(c);
    CHECK(members_not_exact(c, csv) == 0);
    CHECK(c.sql("SELECT count(*) FROM members WHERE delivered_seq < last_seq") == "0");
}

namespace {
std::string generated_csv(const std::string& stem, int rows, int seed, int members) {
    const std::string csv = temp_path(stem) + ".csv";
    const auto r = run_process({binary, "generate", "--rows", std::to_string(rows), "--seed", std::to_string(seed), "--members",
                                std::to_string(members), "-o", csv},
                               std::chrono::seconds(30));
    if (r.exit_code != 0) throw std::runtime_error("offerd generate failed: " + r.err);
    return csv;
}

// `offerd stream` in the background with its jsonl rows in a file (a pipe would fill up).
std::unique_ptr<child_process> stream_to(const cluster& c, const std::string& csv, const std::string& rows_file, int concurrency = 8) {
    return std::make_unique<child_process>(std::vector<std::string>{
        "/bin/sh", "-c", "exec \"$0\" stream --csv \"$1\" --target \"$2\" --concurrency \"$4\" --retries 20 --output jsonl > \"$3\"", binary, csv,
        c.url(), rows_file, std::to_string(concurrency)});
}

// The CSV lines the stream answered 200 (first time or replayed), from its jsonl rows.
std::vector<std::int64_t> answered_lines(const std::string& rows_file) {
    std::vector<std::int64_t> out;
    std::istringstream in(read_file(rows_file));
    for (std::string line; std::getline(in, line);) {
        boost::system::error_code ec;
        auto v = json::parse(line, ec);
        if (ec || !v.is_object()) continue;
        const auto& o = v.as_object();
        if (o.contains("status") && o.at("status").is_int64() && o.at("status").as_int64() == 200) out.push_back(o.at("line").to_number<std::int64_t>());
    }
    return out;
}
}  // namespace

TEST_CASE("cluster: PostgreSQL killed mid-stream: 503 while it is down, nothing answered 200 is lost, the retries complete after it is back", "[e2e][cluster]") {
    cluster c(2);
    const std::string csv = generated_csv("cluster-pg", 1200, 12, 100);
    const std::string rows = temp_path("cluster-pg-rows") + ".jsonl";
    auto streamer = stream_to(c, csv, rows);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    REQUIRE(c.script({"kill-postgres"}, std::chrono::seconds(30)).exit_code == 0);
    // While it is down the replicas refuse (503, the state store unavailable) rather than guess.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto refused = post(c.replica_port(1), "/member/offer", txn_body("PGDOWN", "2024-06-04T10:00:00Z"));
    CHECK(refused.status == 503);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    REQUIRE(c.script({"start-postgres"}, std::chrono::seconds(60)).exit_code == 0);
    const int first = streamer->stop(0, std::chrono::seconds(240));
    INFO("first run exit " << first << ": " << streamer->err());
    // Every row answered 200 is in the member log: a commit precedes every 200.
    const auto answered = answered_lines(rows);
    CHECK(answered.size() > 0);
    const auto valid = read_valid_rows(csv);
    const std::string logged = c.sql("SELECT count(*) FROM member_log WHERE member_id <> 'PGDOWN'");
    CHECK(std::stoul(logged) >= answered.size());
    // The rerun completes what is left and replays what went in.
    auto rerun = run_process({binary, "stream", "--csv", csv, "--target", c.url(), "--concurrency", "8", "--retries", "20", "--quiet"},
                             std::chrono::seconds(240));
    INFO("rerun: " << rerun.err);
    CHECK(rerun.exit_code == 0);
    wait_delivered(c);
    CHECK(c.sql("SELECT count(*) FROM member_log WHERE member_id <> 'PGDOWN'") == std::to_string(valid.size()));
    CHECK(members_not_exact(c, csv) == 0);
}

TEST_CASE("cluster: rebalance mid-stream (a 4th replica added, one stopped with SIGTERM): nothing lost, doubled or reordered", "[e2e][cluster]") {
    // member-data keeps its histories in the same PostgreSQL here (--member-data-store).
    cluster c(3, {"--member-data-store", "postgresql"});
    // Long enough for both changes to land mid-stream. 4,000 rows (about 3 s at 4 in flight) were
    // a thin margin: the test failed once in the whole suite at -j 2 after offerd moved to
    // tcmalloc, and passed alone; the failing check was not kept, so this is a guess it can bear.
    const std::string csv = generated_csv("cluster-rebalance", 10000, 13, 300);
    const std::string rows = temp_path("cluster-rebalance-rows") + ".jsonl";
    auto streamer = stream_to(c, csv, rows, 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    REQUIRE(c.script({"start-replica", "4"}, std::chrono::seconds(60)).exit_code == 0);  // HAProxy reloaded with 4
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    const auto stopped = c.script({"stop-replica", "1"}, std::chrono::seconds(60));
    REQUIRE(stopped.exit_code == 0);
    // Both happened while rows were still being sent.
    CHECK(answered_lines(rows).size() < read_valid_rows(csv).size());
    const int first = streamer->stop(0, std::chrono::seconds(240));
    INFO("first run exit " << first << ": " << streamer->err());
    auto rerun = run_process({binary, "stream", "--csv", csv, "--target", c.url(), "--concurrency", "8", "--retries", "20", "--quiet"},
                             std::chrono::seconds(240));
    INFO("rerun: " << rerun.err);
    CHECK(rerun.exit_code == 0);
    wait_delivered(c);
    CHECK(c.sql("SELECT count(*) FROM member_log") == std::to_string(read_valid_rows(csv).size()));
    CHECK(members_not_exact(c, csv) == 0);
    // The 4th replica took members.
    CHECK(c.metric(4, "offerd_state_appends_total{outcome=\"appended\"}") > 0);
}

TEST_CASE("cluster: member-data down for a whole stream: warm members get 200, rows wait in PostgreSQL and drain in order, and a restarted replica drains before it reads", "[e2e][cluster]") {
    cluster c(2);
    const std::string csv = generated_csv("cluster-mdown", 600, 14, 40);
    // Every member once, so both replicas hold them warm.
    const auto valid = read_valid_rows(csv);
    std::map<std::string, bool> seen;
    std::string warmup = "memberId,lastTransactionUtcTs,lastTransactionType,lastTransactionPointsBought,lastTransactionRevenueUsd\n";
    std::string rest = warmup;
    {
        std::istringstream in(read_file(csv));
        std::string line;
        std::getline(in, line);
        while (std::getline(in, line)) {
            const std::string member = line.substr(0, line.find(','));
            (seen.emplace(member, true).second ? warmup : rest) += line + "\n";
        }
    }
    const std::string warm_csv = temp_path("cluster-mdown-warm") + ".csv", rest_csv = temp_path("cluster-mdown-rest") + ".csv";
    std::ofstream(warm_csv) << warmup;
    std::ofstream(rest_csv) << rest;
    REQUIRE(run_process({binary, "stream", "--csv", warm_csv, "--target", c.url(), "--quiet"}, std::chrono::seconds(120)).exit_code == 0);
    REQUIRE(c.script({"kill-service", "member-data"}, std::chrono::seconds(30)).exit_code == 0);
    // The rest of the stream with member-data down: warm members are decided over the replicas'
    // own record; the rows wait in the member log.
    auto down = run_process({binary, "stream", "--csv", rest_csv, "--target", c.url(), "--concurrency", "8", "--retries", "0", "--quiet"},
                            std::chrono::seconds(180));
    INFO("stream with member-data down: " << down.err);
    CHECK(down.exit_code == 0);
    CHECK(c.sql("SELECT count(*) FROM members WHERE delivered_seq < last_seq") != "0");
    // Replica 2 restarted meanwhile holds nobody warm: a member of its must be delivered before it
    // is read, and member-data is down, so it is refused (not decided over a partial history).
    REQUIRE(c.script({"kill-replica", "2"}, std::chrono::seconds(30)).exit_code == 0);
    REQUIRE(c.script({"start-replica", "2"}, std::chrono::seconds(60)).exit_code == 0);
    const std::string pending = c.sql("SELECT member_id FROM members WHERE delivered_seq < last_seq ORDER BY member_id LIMIT 1");
    REQUIRE_FALSE(pending.empty());
    const auto cold = post(c.replica_port(2), "/member/offer", txn_body(pending, "2030-01-01T00:00:00Z"));
    CHECK(cold.status == 503);
    // member-data back: everything drains, in order.
    REQUIRE(c.script({"start-service", "member-data"}, std::chrono::seconds(60)).exit_code == 0);
    wait_delivered(c);
    CHECK(c.sql("SELECT count(*) FROM members WHERE delivered_seq < last_seq") == "0");
    CHECK(c.sql("SELECT count(*) FROM member_log") == std::to_string(valid.size()));
    CHECK(members_not_exact(c, csv) == 0);
}
