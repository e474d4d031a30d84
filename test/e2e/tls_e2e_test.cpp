// End-to-end TLS with the built binary: all roles over HTTPS streamed to with `offerd stream --ca`,
// and certificate files that cannot be used refused at start with one line and exit 2.
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "process.hpp"
#include "test_support.hpp"
#include "tls_support.hpp"

using namespace offerd;
using namespace offerd::test;

namespace {
const std::string binary = OFFERD_BINARY;

std::vector<std::string> serve_args(const std::string& cert, const std::string& key) {
    return {binary, "--role", "all", "--orchestrator-port", "0", "--member-data-port", "0", "--prediction-port", "0",
            "--offer-engine-port", "0", "--log-level", "warn", "--threads", "2", "--tls-cert", cert, "--tls-key", key};
}
}  // namespace

TEST_CASE("offerd stream --ca streams to an orchestrator serving HTTPS and another CA is one line and exit 2", "[e2e]") {
    test_pki pki;
    const std::string csv = temp_path("e2e-tls-csv");
    REQUIRE(run_process({binary, "generate", "--rows", "40", "--seed", "11", "--malformed-share", "0", "-o", csv}, std::chrono::seconds(10)).exit_code == 0);
    child_process child(serve_args(pki.cert(), pki.key()));
    const auto urls = listening_urls(child, 4);
    for (const auto& [name, where] : urls) CHECK(where.starts_with("https://127.0.0.1:"));
    const std::string target = urls.at("orchestrator");
    REQUIRE(target.starts_with("https://127.0.0.1:"));
    const std::string by_name = "https://localhost:" + target.substr(target.rfind(':') + 1);

    const auto ok = run_process({binary, "stream", csv, "--target", by_name, "--quiet", "--ca", pki.ca()}, std::chrono::seconds(60));
    INFO(ok.out << ok.err);
    CHECK(ok.exit_code == 0);
    CHECK(ok.out.find("ok=40") != std::string::npos);

    const auto untrusted = run_process({binary, "stream", csv, "--target", target, "--quiet", "--ca", pki.other_ca()}, std::chrono::seconds(30));
    INFO(untrusted.err);
    CHECK(untrusted.exit_code == 2);
    CHECK(std::count(untrusted.err.begin(), untrusted.err.end(), '\n') == 1);
    CHECK(untrusted.err.find("certificate rejected: unable to get local issuer certificate") != std::string::npos);

    const auto plain = run_process({binary, "stream", csv, "--target", "http" + target.substr(5), "--quiet"}, std::chrono::seconds(30));
    CHECK(plain.exit_code == 1);  // every row answered 400 in plain HTTP ("This port speaks HTTPS")
    CHECK(plain.out.find("statuses: 400=") != std::string::npos);  // the rest held back behind them

    CHECK(child.stop(SIGTERM, std::chrono::seconds(20)) == 0);
    std::remove(csv.c_str());
}

TEST_CASE("offerd refuses a TLS certificate or key it cannot use with one line and exit 2", "[e2e]") {
    test_pki pki;
    struct bad_case {
        std::string cert, key, says;
    };
    const std::vector<bad_case> cases{
        {pki.dir() + "/missing.pem", pki.key(), "TLS certificate '" + pki.dir() + "/missing.pem' cannot be used: No such file or directory"},
        {pki.key(), pki.key(), "TLS certificate '" + pki.key() + "' cannot be used: not a PEM certificate"},
        {pki.cert(), pki.other_name_key(), "TLS key '" + pki.other_name_key() + "' cannot be used: it is not the key of that certificate"},
    };
    for (const auto& c : cases) {
        const auto r = run_process(serve_args(c.cert, c.key), std::chrono::seconds(10));
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.starts_with("offerd: " + c.says));
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    const auto half = run_process({binary, "--tls-cert", pki.cert()}, std::chrono::seconds(10));
    CHECK(half.exit_code == 2);
    CHECK(half.err.find("--tls-cert and --tls-key go together") != std::string::npos);
    const auto ca = run_process({binary, "--upstream-ca", pki.key()}, std::chrono::seconds(10));
    CHECK(ca.exit_code == 2);
    CHECK(ca.err.starts_with("offerd: --upstream-ca: CA file '" + pki.key() + "' cannot be used"));
}
