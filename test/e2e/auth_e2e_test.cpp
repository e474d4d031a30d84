// End-to-end security: the built binary refuses an unauthenticated non-loopback bind, reloads
// its keys file on SIGHUP without exiting, and hash-key prints keys-file lines.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "offerd/security/api_keys.hpp"
#include "process.hpp"
#include "security_support.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;

namespace {
const std::string binary = OFFERD_BINARY;
const std::string alice_key = "alice-0123456789abcdef-e2e";
const std::string bob_key = "bob-0123456789abcdef-e2e";

std::map<std::string, std::string> bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }
}  // namespace

TEST_CASE("offerd refuses to listen on a non-loopback address without authentication", "[e2e]") {
    const auto r = run_process({binary, "--host", "0.0.0.0", "--orchestrator-port", "0", "--member-data-port", "0",
                                "--prediction-port", "0", "--offer-engine-port", "0", "--log-level", "off"},
                               std::chrono::seconds(10));
    CHECK(r.exit_code == 2);
    CHECK(r.out.find("listening") == std::string::npos);
    CHECK(r.err.find("refusing to start") != std::string::npos);
    CHECK(r.err.find("--insecure-allow-unauthenticated") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("SIGHUP reloads the keys file: a revoked key gets 401 and offerd keeps running", "[e2e]") {
    const std::string keys = write_temp_file("e2e-keys", *key_file_line("alice", alice_key) + "\n" + *key_file_line("bob", bob_key) + "\n");
    child_process child({binary, "--role", "all", "--orchestrator-port", "0", "--member-data-port", "0", "--prediction-port", "0",
                         "--offer-engine-port", "0", "--log-level", "warn", "--threads", "2", "--api-keys", keys});
    std::uint16_t port = 0;
    for (int seen = 0; seen < 4;) {
        auto line = child.read_line(std::chrono::seconds(10));
        REQUIRE(line);
        if (line->find(" listening on ") == std::string::npos) continue;
        ++seen;
        if (line->starts_with("offerd: orchestrator "))
            port = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
    }
    REQUIRE(port != 0);
    REQUIRE(post(port, "/member/offer", txn_body("E2EAUTH1"), bearer(alice_key)).status == 200);
    CHECK(post(port, "/member/offer", txn_body("E2EAUTH2")).status == 401);

    std::ofstream(keys, std::ios::trunc) << *key_file_line("bob", bob_key) << "\n";
    child.signal(SIGHUP);
    auto reloaded = child.read_line(std::chrono::seconds(10));
    REQUIRE(reloaded);
    CHECK(*reloaded == "offerd: SIGHUP: keys reloaded (1 clients)");
    CHECK(post(port, "/member/offer", txn_body("E2EAUTH3"), bearer(alice_key)).status == 401);
    CHECK(post(port, "/member/offer", txn_body("E2EAUTH4"), bearer(bob_key)).status == 200);

    std::ofstream(keys, std::ios::trunc) << "broken\n";
    child.signal(SIGHUP);
    auto failed = child.read_line(std::chrono::seconds(10));
    REQUIRE(failed);
    CHECK(failed->starts_with("offerd: SIGHUP: keys not reloaded"));
    CHECK(post(port, "/member/offer", txn_body("E2EAUTH5"), bearer(bob_key)).status == 200);
    CHECK(child.stop(SIGTERM, std::chrono::seconds(20)) == 0);
    CHECK(child.err().find(bob_key) == std::string::npos);
    std::remove(keys.c_str());
}

TEST_CASE("offerd stream sends its --key-file credential", "[e2e]") {
    const std::string keys = write_temp_file("e2e-keys", *key_file_line("streamer", alice_key) + "\n");
    const std::string key_path = write_temp_file("e2e-key", alice_key + "\n");
    const std::string csv = temp_path("e2e-csv");
    REQUIRE(run_process({binary, "generate", "--rows", "30", "--seed", "7", "--malformed-share", "0", "-o", csv}, std::chrono::seconds(10)).exit_code == 0);
    child_process child({binary, "--role", "all", "--orchestrator-port", "0", "--member-data-port", "0", "--prediction-port", "0",
                         "--offer-engine-port", "0", "--log-level", "warn", "--threads", "2", "--api-keys", keys});
    std::string target;
    for (int seen = 0; seen < 4;) {
        auto line = child.read_line(std::chrono::seconds(10));
        REQUIRE(line);
        if (line->find(" listening on ") == std::string::npos) continue;
        ++seen;
        if (line->starts_with("offerd: orchestrator ")) target = line->substr(line->rfind(' ') + 1);
    }
    const auto without = run_process({binary, "stream", "--csv", csv, "--target", target, "--quiet", "--retries", "0"}, std::chrono::seconds(30));
    CHECK(without.exit_code == 1);
    const auto with = run_process({binary, "stream", "--csv", csv, "--target", target, "--quiet", "--key-file", key_path}, std::chrono::seconds(30));
    CHECK(with.exit_code == 0);
    CHECK(with.out.find("ok=30") != std::string::npos);
    CHECK(with.out.find(alice_key) == std::string::npos);
    CHECK(child.stop(SIGTERM, std::chrono::seconds(20)) == 0);
    for (const auto& p : {keys, key_path, csv}) std::remove(p.c_str());
}

TEST_CASE("offerd hash-key prints the keys-file line for a key on stdin", "[e2e]") {
    const std::string key_path = write_temp_file("e2e-key", alice_key + "\n");
    const auto r = run_process({"/bin/sh", "-c", "'" + binary + "' hash-key alice < '" + key_path + "'"}, std::chrono::seconds(10));
    CHECK(r.exit_code == 0);
    CHECK(r.out == *key_file_line("alice", alice_key) + "\n");
    CHECK(r.out.find(alice_key) == std::string::npos);
    const auto bad = run_process({"/bin/sh", "-c", "echo short | '" + binary + "' hash-key alice"}, std::chrono::seconds(10));
    CHECK(bad.exit_code == 2);
    std::remove(key_path.c_str());
}
