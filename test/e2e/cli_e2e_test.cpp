// The binary's command line on ordinary mistakes: bad values are one line and exit 2, never a
// crash or a silent substitute; `offerd stream` against an in-test orchestrator.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>

#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;

namespace {

const std::string binary = OFFERD_BINARY;

// An orchestrator stand-in answering every row 200 (served on /member_data, which fake_upstream routes).
struct fake_target {
    fake_upstream server{[](const request& r) {
        if (r.method() == http::verb::get) return json_response(http::status::ok, R"({"status":"ok"})");
        return json_response(http::status::ok, R"({"memberId":"x","offer":"35% Bonus"})");
    }};
    std::size_t posts() const {
        const auto seen = server.requests();
        return static_cast<std::size_t>(std::count_if(seen.begin(), seen.end(), [](const request& r) { return r.method() == http::verb::post; }));
    }
};

std::vector<std::string> stream_argv(const fake_target& t, std::vector<std::string> extra) {
    std::vector<std::string> argv{binary, "stream", "--target", t.server.url(), "--path", "/member_data", "--quiet"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

std::string generated_csv(int rows) {
    const std::string csv = temp_path("cli-csv");
    REQUIRE(run_process({binary, "generate", "--rows", std::to_string(rows), "--malformed-share", "0", "-o", csv}, std::chrono::seconds(10))
                .exit_code == 0);
    return csv;
}

std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("generate refuses negative rows and members with one line and exit 2 instead of crashing", "[e2e]") {
    for (const auto& [flag, value] : {std::pair{"--rows", "-5"}, std::pair{"--members", "-1"}}) {
        auto r = run_process({binary, "generate", flag, value}, std::chrono::seconds(10));
        INFO(flag << " " << value << ": " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(std::string(flag) + ": must be 0..") != std::string::npos);
        CHECK(lines(r.err) == 1);
        CHECK(r.out.empty());
    }
}

TEST_CASE("generate refuses a stray argument", "[e2e]") {
    auto r = run_process({binary, "generate", "--rows", "5", "extra.csv"}, std::chrono::seconds(10));
    CHECK(r.exit_code == 2);
    CHECK(lines(r.err) == 1);
    CHECK(r.out.empty());
}

TEST_CASE("a negative port or pool size is refused with its range instead of wrapping", "[e2e]") {
    auto port = run_process({binary, "--orchestrator-port", "-1"}, std::chrono::seconds(10));
    CHECK(port.exit_code == 2);
    CHECK(port.err.find("offerd: --orchestrator-port: must be 0..65535, got -1") == 0);
    auto pool = run_process({binary, "--role", "prediction", "--prediction-port", "0", "--pool-size", "-1"}, std::chrono::seconds(10));
    CHECK(pool.exit_code == 2);
    CHECK(pool.err.find("--pool-size: must be 0..100000, got -1") != std::string::npos);
    CHECK(lines(pool.err) == 1);
}

TEST_CASE("an OFFERD_ value out of range names the variable", "[e2e]") {
    setenv("OFFERD_THREADS", "-3", 1);
    auto r = run_process({binary, "--role", "prediction", "--prediction-port", "0"}, std::chrono::seconds(10));
    unsetenv("OFFERD_THREADS");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("OFFERD_THREADS: must be 0..256, got -3") != std::string::npos);
}

TEST_CASE("stream uses the CSV given as its positional argument", "[e2e]") {
    fake_target target;
    const std::string csv = generated_csv(7);
    auto r = run_process(stream_argv(target, {csv}), std::chrono::seconds(20));
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(target.posts() == 7);
    CHECK(r.out.find("rows_read=7 ") != std::string::npos);
    std::remove(csv.c_str());
}

TEST_CASE("stream --output jsonl keeps stdout one JSON object a line and --summary-json writes the summary", "[e2e]") {
    fake_target target;
    const std::string csv = generated_csv(5), summary = temp_path("summary") + ".json";
    auto r = run_process({binary, "stream", csv, "--target", target.server.url(), "--path", "/member_data", "--output", "jsonl",
                          "--summary-json", summary},
                         std::chrono::seconds(20));
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(lines(r.out) == 5);
    std::istringstream out(r.out);
    for (std::string line; std::getline(out, line);) {
        INFO(line);
        const auto row = boost::json::parse(line).as_object();
        CHECK(row.at("outcome") == "ok");
        CHECK(row.at("offer") == "35% Bonus");
    }
    CHECK(r.err.find("summary: rows_read=5 ") != std::string::npos);  // the text summary moves to stderr
    const auto s = boost::json::parse(read_file(summary)).as_object();
    CHECK(s.at("rows_read").as_int64() == 5);
    CHECK(s.at("ok").as_int64() == 5);
    CHECK(s.at("exit_status").as_int64() == 0);

    auto to_stdout = run_process(stream_argv(target, {csv, "--summary-json", "-"}), std::chrono::seconds(20));
    CHECK(to_stdout.exit_code == 0);
    const auto last = to_stdout.out.substr(to_stdout.out.rfind('\n', to_stdout.out.size() - 2) + 1);
    CHECK(boost::json::parse(last).at("ok").as_int64() == 5);  // the JSON summary is stdout's last line

    auto bad = run_process(stream_argv(target, {csv, "--output", "xml"}), std::chrono::seconds(10));
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("--output: expected text or jsonl, not 'xml'") != std::string::npos);
    const std::size_t before = target.posts();
    auto unwritable = run_process(stream_argv(target, {csv, "--summary-json", "/nonexistent-dir/summary.json"}), std::chrono::seconds(10));
    CHECK(unwritable.exit_code == 2);
    CHECK(unwritable.err.find("--summary-json: cannot write '/nonexistent-dir/summary.json'") != std::string::npos);
    CHECK(target.posts() == before);  // nothing sent
    std::remove(csv.c_str());
    std::remove(summary.c_str());
}

TEST_CASE("stream refuses two CSVs instead of picking one", "[e2e]") {
    fake_target target;
    auto r = run_process(stream_argv(target, {"--csv", "one.csv", "two.csv"}), std::chrono::seconds(10));
    CHECK(r.exit_code == 2);
    CHECK(lines(r.err) == 1);
    CHECK(target.posts() == 0);
}

TEST_CASE("stream --csv - reads the rows from standard input", "[e2e]") {
    fake_target target;
    const std::string csv = generated_csv(9);
    auto r = run_process({"/bin/sh", "-c", "exec \"$0\" stream --csv - --target \"$1\" --path /member_data --quiet < \"$2\"", binary,
                          target.server.url(), csv},
                         std::chrono::seconds(20));
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(target.posts() == 9);
    std::remove(csv.c_str());
}

TEST_CASE("stream of a directory is one line and exit 2, not an abort", "[e2e]") {
    fake_target target;
    auto r = run_process(stream_argv(target, {"--csv", "/tmp"}), std::chrono::seconds(10));
    CHECK(r.exit_code == 2);
    CHECK(r.err == "offerd stream: cannot read CSV file '/tmp': it is a directory\n");
}

TEST_CASE("stream checks the target before reading the file", "[e2e]") {
    // Endless input: a stream that read the file first would never get to the target.
    auto r = run_process({"/bin/sh", "-c", "exec \"$0\" stream --csv - --target \"$1\" < /dev/zero", binary,
                          "http://127.0.0.1:" + std::to_string(closed_port())},
                         std::chrono::seconds(20));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("cannot reach the orchestrator") != std::string::npos);
}

TEST_CASE("Ctrl-C during a stream prints the summary of the rows sent so far and exits 130", "[e2e]") {
    // The target holds its first answer until the test has interrupted the stream.
    std::mutex m;
    std::condition_variable cv;
    bool reached = false, released = false;
    fake_upstream target([&](const request& r) {
        if (r.method() == http::verb::get) return json_response(http::status::ok, R"({"status":"ok"})");
        std::unique_lock lock(m);
        if (!reached) {
            reached = true;
            cv.notify_all();
            cv.wait_for(lock, std::chrono::seconds(10), [&] { return released; });
        }
        return json_response(http::status::ok, R"({"memberId":"x","offer":"35% Bonus"})");
    });
    const std::string csv = generated_csv(500);
    child_process stream({binary, "stream", "--csv", csv, "--target", target.url(), "--path", "/member_data", "--quiet", "--concurrency", "1"});
    {
        std::unique_lock lock(m);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return reached; }));
    }
    stream.signal(SIGINT);
    {
        std::lock_guard lock(m);
        released = true;
    }
    cv.notify_all();
    std::string out;
    while (auto line = stream.read_line(std::chrono::seconds(10))) out += *line + "\n";
    CHECK(stream.stop(SIGKILL, std::chrono::seconds(10)) == 130);
    INFO(out << stream.err());
    CHECK(out.find("summary: rows_read=") != std::string::npos);
    CHECK(out.find(" interrupted=true") != std::string::npos);
    // Sending stopped at the signal: the held row and at most the few the stream sent before it saw the signal.
    const auto sent_at = out.find(" sent=");
    REQUIRE(sent_at != std::string::npos);
    const int sent = std::stoi(out.substr(sent_at + 6));
    CHECK(sent >= 1);
    CHECK(sent < 100);
    std::remove(csv.c_str());
}

TEST_CASE("offerd --version prints version, git revision, compiler, Boost and allocator, the labels of offerd_build_info", "[e2e]") {
    auto v = run_process({binary, "--version"}, std::chrono::seconds(10));
    REQUIRE(v.exit_code == 0);
    std::map<std::string, std::string> fields;
    std::istringstream in(v.out);
    std::string first;
    std::getline(in, first);
    CHECK(first.starts_with("offerd "));
    for (std::string line; std::getline(in, line);) {
        const auto colon = line.find(": ");
        REQUIRE(colon != std::string::npos);
        fields[line.substr(0, colon)] = line.substr(colon + 2);
    }
    CHECK(fields.size() == 4);
    CHECK_FALSE(fields["revision"].empty());
    CHECK_FALSE(fields["compiler"].empty());
    CHECK(fields["Boost"].starts_with("1."));
    // The release build links tcmalloc (CMake's OFFERD_MALLOC); sanitizer builds keep their own.
    CHECK(fields["malloc"] == (OFFERD_TEST_EXPECTS_TCMALLOC ? "tcmalloc" : "system"));

    child_process server({binary, "--role", "prediction", "--prediction-port", "0", "--log-level", "off"});
    auto line = server.read_line(std::chrono::seconds(10));
    REQUIRE(line);
    const auto port = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
    const auto metrics = get(port, "/metrics");
    REQUIRE(metrics.status == 200);
    const std::string expected = "offerd_build_info{version=\"" + first.substr(7) + "\",revision=\"" + fields["revision"] +
                                 "\",compiler=\"" + fields["compiler"] + "\",boost=\"" + fields["Boost"] +
                                 "\",malloc=\"" + fields["malloc"] + "\"} 1";
    CHECK(metrics.body.find(expected) != std::string::npos);
    CHECK(server.stop(SIGTERM, std::chrono::seconds(10)) == 0);
}

namespace {

// scripts/run.sh with the built binary as it is, every listener on `ports`, the log in a temp file.
run_output run_script(const std::string& csv, const std::string& orchestrator_port, const std::string& other_ports) {
    const std::string build_dir = binary.substr(0, binary.rfind('/'));
    const std::string log = temp_path("run-log");
    auto r = run_process({"/usr/bin/env", "RUN_SKIP_BUILD=1", "BUILD_DIR=" + build_dir, "OFFERD_LOG_FILE=" + log,
                          "OFFERD_ORCHESTRATOR_PORT=" + orchestrator_port, "OFFERD_MEMBER_DATA_PORT=" + other_ports,
                          "OFFERD_PREDICTION_PORT=" + other_ports, "OFFERD_OFFER_ENGINE_PORT=" + other_ports,
                          std::string(OFFERD_SOURCE_DIR) + "/scripts/run.sh", csv, "--quiet"},
                         std::chrono::seconds(60));
    std::remove(log.c_str());
    return r;
}

}  // namespace

TEST_CASE("scripts/run.sh streams through the offerd it started", "[e2e]") {
    const std::string csv = generated_csv(20);
    auto r = run_script(csv, "0", "0");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("orchestrator listening on") != std::string::npos);
    CHECK(r.out.find("summary: rows_read=20 sent=20 ok=20 ") != std::string::npos);
    std::remove(csv.c_str());
}

TEST_CASE("scripts/run.sh with its port held by another server says its offerd did not start and streams nothing", "[e2e]") {
    fake_target other;
    const std::string csv = generated_csv(5);
    auto r = run_script(csv, std::to_string(other.server.port()), "0");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("in use") != std::string::npos);
    CHECK(r.err.find("run: offerd did not start") != std::string::npos);
    CHECK(r.err.find("No such process") == std::string::npos);
    CHECK(other.posts() == 0);
    std::remove(csv.c_str());
}

TEST_CASE("scripts/deps.sh says what it installs and lets no installed service start", "[e2e]") {
    if (geteuid() != 0) {
        WARN("skipped: not root, so deps.sh would run apt-get through sudo, which ignores the stand-ins");
        return;
    }
    // Stand-ins for dpkg-query (nothing installed) and apt-get (records each call and what
    // policy-rc.d answers while it installs).
    const std::string dir = temp_path("deps-stubs");
    std::remove(dir.c_str());
    REQUIRE(mkdir(dir.c_str(), 0700) == 0);
    const std::string calls = dir + "/calls", policy = dir + "/policy-rc.d";
    std::ofstream(dir + "/dpkg-query") << "#!/bin/sh\nexit 1\n";
    std::ofstream(dir + "/apt-get") << "#!/bin/sh\necho \"apt-get $*\" >> " << calls << "\ncase \"$*\" in *install*) \"" << policy
                                    << "\" prometheus start; echo \"policy $?\" >> " << calls << ";; esac\n";
    for (const char* stub : {"/dpkg-query", "/apt-get"}) REQUIRE(chmod((dir + stub).c_str(), 0700) == 0);
    auto r = run_process({"/usr/bin/env", "PATH=" + dir + ":/usr/bin:/bin", "DEPS_POLICY_RC_D=" + policy,
                          std::string(OFFERD_SOURCE_DIR) + "/scripts/deps.sh", "prometheus"},
                         std::chrono::seconds(30));
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("deps: installing tools the README uses: curl jq") != std::string::npos);
    CHECK(r.err.find("deps: installing test tools: prometheus") != std::string::npos);
    const std::string log = read_file(calls);
    CHECK(log.find("install -y -qq --no-install-recommends prometheus") != std::string::npos);
    CHECK(log.find("policy 0") == std::string::npos);
    CHECK(log.find("policy 101") != std::string::npos);
    CHECK(access(policy.c_str(), F_OK) != 0);  // removed again
    for (const char* f : {"/dpkg-query", "/apt-get", "/calls"}) std::remove((dir + f).c_str());
    rmdir(dir.c_str());
}

TEST_CASE("SIGHUP reopens the log file (logrotate) and offerd keeps serving", "[e2e]") {
    const std::string log = temp_path("e2e-rotate") + ".log";
    child_process child({binary, "--role", "all", "--orchestrator-port", "0", "--member-data-port", "0", "--prediction-port", "0",
                         "--offer-engine-port", "0", "--threads", "1", "--log-file", log, "--throughput-interval-ms", "0"});
    const std::string url = listening_urls(child, 4).at("orchestrator");
    const auto port = static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
    REQUIRE(post(port, "/member/offer", txn_body("ROTATE1")).status == 200);
    std::filesystem::rename(log, log + ".1");
    child.signal(SIGHUP);
    auto reopened = child.read_line(std::chrono::seconds(10));
    REQUIRE(reopened);
    CHECK(*reopened == "offerd: SIGHUP: log file reopened");
    REQUIRE(post(port, "/member/offer", txn_body("ROTATE2")).status == 200);
    CHECK(child.stop(SIGTERM, std::chrono::seconds(20)) == 0);
    const std::string before = read_file(log + ".1"), after = read_file(log);
    CHECK(before.find("ROTATE1") != std::string::npos);
    CHECK(before.find("ROTATE2") == std::string::npos);
    CHECK(after.find("ROTATE2") != std::string::npos);
    CHECK(after.find("\"event\":\"log_reopened\"") != std::string::npos);
    std::filesystem::remove(log);
    std::filesystem::remove(log + ".1");
}
