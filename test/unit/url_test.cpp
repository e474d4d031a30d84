// Upstream URL parsing: schemes and default ports, base paths, IPv6 hosts, and the URLs refused.
#include <catch2/catch.hpp>

#include "offerd/net/url.hpp"

using namespace offerd;

namespace {
std::string refusal(std::string_view text) {
    auto u = parse_url(text);
    return u ? std::string("accepted") : u.error().detail;
}
}  // namespace

TEST_CASE("parse_url takes https with port 443 by default and keeps the scheme", "[unit]") {
    auto u = parse_url("https://md.internal/base/");
    REQUIRE(u);
    CHECK(u->tls);
    CHECK(u->port == 443);
    CHECK(u->base_path == "/base");
    CHECK(u->to_string() == "https://md.internal:443/base");
    auto plain = parse_url("http://md.internal");
    REQUIRE(plain);
    CHECK_FALSE(plain->tls);
    CHECK(plain->port == 80);
    CHECK(plain->base_path.empty());
    CHECK(refusal("ftp://md.internal") == "URL must start with http:// or https:// (got 'ftp://md.internal')");
}

TEST_CASE("a base path is kept without its trailing slashes and percent-encoded as given", "[unit]") {
    auto u = parse_url("http://127.0.0.1:8001/api/v1//");
    REQUIRE(u);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 8001);
    CHECK(u->base_path == "/api/v1");
    CHECK(u->to_string() == "http://127.0.0.1:8001/api/v1");
    auto encoded = parse_url("http://h:8001/a%20b/");
    REQUIRE(encoded);
    CHECK(encoded->base_path == "/a%20b");
    CHECK(parse_url("http://h:8001/")->base_path.empty());
}

TEST_CASE("an IPv6 host is kept without brackets for the resolver and printed with them", "[unit]") {
    auto u = parse_url("http://[::1]:28060/api");
    REQUIRE(u);
    CHECK(u->host == "::1");
    CHECK(u->port == 28060);
    CHECK(u->host_header() == "[::1]:28060");
    CHECK(u->to_string() == "http://[::1]:28060/api");
    auto dflt = parse_url("https://[2001:db8::7]");
    REQUIRE(dflt);
    CHECK(dflt->port == 443);
    CHECK(dflt->to_string() == "https://[2001:db8::7]:443");
    CHECK(host_port("10.0.0.1", 80) == "10.0.0.1:80");
    CHECK(host_port("fe80::1", 80) == "[fe80::1]:80");
}

TEST_CASE("URLs an upstream cannot be reached by are refused naming the problem", "[unit]") {
    CHECK(refusal("http://h:80x") == "URL has an invalid port: 'http://h:80x'");
    CHECK(refusal("http://h:0") == "URL has an invalid port: 'http://h:0'");
    CHECK(refusal("http://h:65536/api") == "URL has an invalid port: 'http://h:65536/api'");
    CHECK(refusal("http://h:") == "URL has an invalid port: 'http://h:'");
    CHECK(refusal("http://[::1]:80x") == "URL has an invalid port: 'http://[::1]:80x'");
    CHECK(refusal("http://[::1") == "URL has an unterminated IPv6 address: 'http://[::1'");
    CHECK(refusal("http:///api") == "URL has no host: 'http:///api'");
    CHECK(refusal("http://") == "URL has no host: 'http://'");
    CHECK(refusal("http://h/a b") == "URL is malformed: 'http://h/a b'");
    CHECK(refusal("http://user:secret@h:8001/api") ==
          "URL must not carry credentials (user@ or user:password@): give the upstream's key with its --*-key-file flag "
          "(got 'http://***@h:8001/api')");  // never the password
    CHECK(refusal("http://h:8001/api?x=1") == "URL must not have a query (?) or a fragment (#): 'http://h:8001/api?x=1'");
    CHECK(refusal("http://h:8001/#top") == "URL must not have a query (?) or a fragment (#): 'http://h:8001/#top'");
    CHECK(refusal("http://[v1.x]:8001").starts_with("URL has no usable host"));
    CHECK(refusal("http://a%2Fb:8001").starts_with("URL host must be a plain name"));
}
