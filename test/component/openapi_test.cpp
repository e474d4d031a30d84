// The API documents stay true: every route each router serves is documented with its methods (and
// nothing else is), and real answers, happy and failing, fit the documented statuses, headers and
// body schemas. Also the validator's own subset and the /docs page.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <set>

#include "json_schema.hpp"
#include "offerd/net/router.hpp"
#include "offerd/security/api_keys.hpp"
#include "security_support.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {

constexpr std::array<role, 4> every_role{role::orchestrator, role::member_data, role::prediction, role::offer_engine};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string header(const http_result& r, std::string_view name) {
    for (const auto& [k, v] : r.headers)
        if (lower(k) == lower(name)) return v;
    return {};
}

json::value fetch_document(std::uint16_t port) {
    const auto r = get(port, "/openapi.json");
    REQUIRE(r.status == 200);
    REQUIRE(header(r, "Content-Type") == "application/json");
    return json::parse(r.body);
}

const json::value& deref(const json::value& doc, const json::value& v) {
    if (const json::object* o = v.if_object())
        if (const json::value* r = o->if_contains("$ref")) {
            const json::value* target = resolve_ref(doc, r->as_string());
            REQUIRE(target);
            return *target;
        }
    return v;
}

// Checks an answer against a documented response object: its content type is documented, the body
// fits that media type's schema, and every header documented as required is present.
void check_against(const json::value& doc, const json::value& documented, const http_result& r) {
    const json::object& resp = deref(doc, documented).as_object();
    if (const json::value* headers = resp.if_contains("headers"))
        for (const auto& [name, h] : headers->as_object()) {
            const json::object& ho = deref(doc, h).as_object();
            if (const json::value* req = ho.if_contains("required"); req && req->as_bool()) {
                INFO("documented header " << std::string_view(name));
                CHECK_FALSE(header(r, name).empty());
            }
        }
    const json::value* content = resp.if_contains("content");
    REQUIRE(content);
    const std::string type = header(r, "Content-Type");
    const json::value* media = content->as_object().if_contains(type);
    INFO("Content-Type " << type);
    REQUIRE(media);
    const json::value& schema = media->as_object().at("schema");
    json::value body = json::string(r.body);  // a text body is a JSON string for its schema
    if (type.starts_with("application/json")) {
        json::error_code ec;
        body = json::parse(r.body, ec);
        REQUIRE_FALSE(ec);
    }
    const auto problems = schema_violations(body, schema, doc);
    INFO("body " << r.body.substr(0, 600));
    for (const std::string& p : problems) INFO(p);
    CHECK(problems.empty());
}

// An answer of the operation `method path` (path as documented, e.g. /member_data/{memberId}).
void check_answer(const json::value& doc, std::string_view path, std::string_view method, const http_result& r) {
    INFO(method << " " << path << " answered " << r.status);
    REQUIRE(r.status != 0);
    const json::value* item = doc.at("paths").as_object().if_contains(path);
    REQUIRE(item);
    const json::value* op = item->as_object().if_contains(lower(method));
    REQUIRE(op);
    const json::value* documented = op->as_object().at("responses").as_object().if_contains(std::to_string(r.status));
    REQUIRE(documented);  // the status is documented for this operation
    check_against(doc, *documented, r);
}

// An answer to a path or method no route serves.
void check_unmatched(const json::value& doc, const http_result& r) {
    INFO("unmatched answered " << r.status);
    const json::value* documented = doc.at("x-offerd-unmatched").as_object().if_contains(std::to_string(r.status));
    REQUIRE(documented);
    check_against(doc, *documented, r);
}

// A raw answer (status line, headers, body) as an http_result.
http_result parse_raw(const std::string& text) {
    http_result r;
    const std::size_t end = text.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    r.status = static_cast<unsigned>(std::stoi(text.substr(9, 3)));
    std::size_t at = text.find("\r\n") + 2;
    while (at < end) {
        const std::size_t eol = text.find("\r\n", at);
        const std::string line = text.substr(at, eol - at);
        const std::size_t colon = line.find(':');
        r.headers[line.substr(0, colon)] = line.substr(line.find_first_not_of(' ', colon + 1));
        at = eol + 2;
    }
    r.body = text.substr(end + 4, static_cast<std::size_t>(std::stoul(header(r, "Content-Length"))));
    return r;
}

std::string raw_post(const std::string& path, const std::string& extra_headers) {
    return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

std::string body_of_size(std::size_t n) { return R"({"memberId":")" + std::string(n, 'a') + R"("})"; }

const std::string features_body = R"({"AVG_POINTS_BOUGHT":200,"AVG_REVENUE_USD":40,"LAST_3_TRANSACTIONS_AVG_POINTS_BOUGHT":300,)"
                                  R"("LAST_3_TRANSACTIONS_AVG_REVENUE_USD":60,"PCT_BUY_TRANSACTIONS":0.5,"PCT_GIFT_TRANSACTIONS":0.25,)"
                                  R"("PCT_REDEEM_TRANSACTIONS":0.25,"DAYS_SINCE_LAST_TRANSACTION":4})";

// The answers every listener gives whatever its role: probes, documents, unmatched, transport errors.
void check_common_answers(const json::value& doc, std::uint16_t port, const std::string& a_post_path) {
    check_answer(doc, "/health", "GET", get(port, "/health"));
    check_answer(doc, "/metrics", "GET", get(port, "/metrics"));
    check_answer(doc, "/openapi.json", "GET", get(port, "/openapi.json"));
    check_answer(doc, "/docs", "GET", get(port, "/docs"));
    check_unmatched(doc, get(port, "/no/such/route"));
    check_unmatched(doc, http_call(port, http::verb::delete_, "/health"));
    check_answer(doc, a_post_path, "POST", post(port, a_post_path, body_of_size(70 * 1024)));  // 413
    check_answer(doc, a_post_path, "POST", post(port, a_post_path, "{}", {{"X-Padding", std::string(9 * 1024, 'p')}}));  // 431
    check_answer(doc, a_post_path, "POST", parse_raw(raw_exchange(port, raw_post(a_post_path, "Transfer-Encoding: gzip, chunked\r\n"))));  // 501
    check_answer(doc, a_post_path, "POST", parse_raw(raw_exchange(port, raw_post(a_post_path, "Transfer-Encoding: chunked, gzip\r\n"))));  // 400
}

std::set<std::pair<std::string, std::string>> served(const router& r) {
    std::set<std::pair<std::string, std::string>> out;
    for (const auto& route : r.routes()) out.emplace(std::string(route.pattern), lower(http::to_string(route.method)));
    return out;
}

std::set<std::pair<std::string, std::string>> documented(const json::value& doc) {
    std::set<std::pair<std::string, std::string>> out;
    for (const auto& [path, item] : doc.at("paths").as_object())
        for (const auto& [method, op] : item.as_object()) out.emplace(std::string(path), std::string(method));
    return out;
}

}  // namespace

TEST_CASE("Every route each listener serves is in its OpenAPI document with its methods, and nothing else is", "[component]") {
    test_app app;
    for (role r : every_role) {
        INFO("listener " << to_string(r));
        const auto routes = app.rt().routes(r);
        REQUIRE(routes);
        const json::value doc = fetch_document(app.port(r));
        CHECK(doc.at("openapi").as_string() == "3.1.0");
        CHECK(served(*routes) == documented(doc));
        CHECK(served(*routes).count({"/openapi.json", "get"}) == 1);
    }
}

TEST_CASE("Every schema in the documents is within the validated subset and every reference resolves", "[component]") {
    test_app app;
    for (role r : every_role) {
        INFO("listener " << to_string(r));
        const json::value doc = fetch_document(app.port(r));
        std::vector<std::string> problems;
        const auto check = [&](const json::value& schema, const std::string& where) {
            for (const std::string& p : schema_defects(schema, doc)) problems.push_back(where + ": " + p);
        };
        for (const auto& [name, s] : doc.at("components").as_object().at("schemas").as_object()) check(s, "schema " + std::string(name));
        // Every operation: parameters, request bodies and responses resolve and carry schemas.
        for (const auto& [path, item] : doc.at("paths").as_object())
            for (const auto& [method, op] : item.as_object()) {
                const std::string where = std::string(method) + " " + std::string(path);
                for (const json::value& p : op.as_object().at("parameters").as_array()) check(deref(doc, p).as_object().at("schema"), where + " parameter");
                if (const json::value* body = op.as_object().if_contains("requestBody"))
                    for (const auto& [type, media] : body->as_object().at("content").as_object()) check(media.as_object().at("schema"), where + " body");
                for (const auto& [status, resp] : op.as_object().at("responses").as_object()) {
                    const json::object& ro = deref(doc, resp).as_object();
                    if (!ro.contains("content")) problems.push_back(where + " " + std::string(status) + ": no content");
                    else
                        for (const auto& [type, media] : ro.at("content").as_object()) check(media.as_object().at("schema"), where + " " + std::string(status));
                    if (!ro.contains("headers") || !ro.at("headers").as_object().contains("X-Request-ID"))
                        problems.push_back(where + " " + std::string(status) + ": X-Request-ID not documented");
                }
            }
        for (const std::string& p : problems) INFO(p);
        CHECK(problems.empty());
    }
}

TEST_CASE("The orchestrator's real answers fit its document", "[component]") {
    test_app app;
    const auto port = app.port(role::orchestrator);
    const json::value doc = fetch_document(port);
    check_common_answers(doc, port, "/member/offer");
    check_answer(doc, "/member/offer", "POST", post(port, "/member/offer", txn_body("OA1")));
    const auto first = post(port, "/member/offer", txn_body("OA2"), {{"Idempotency-Key", "k-1"}});
    const auto replay = post(port, "/member/offer", txn_body("OA2"), {{"Idempotency-Key", "k-1"}});
    CHECK(header(replay, "Idempotent-Replayed") == "true");
    check_answer(doc, "/member/offer", "POST", first);
    check_answer(doc, "/member/offer", "POST", replay);
    check_answer(doc, "/member/offer", "POST", post(port, "/member/offer", txn_body("OA2", "2024-06-02T10:00:00Z"), {{"Idempotency-Key", "k-1"}}));  // 422 conflict
    check_answer(doc, "/member/offer", "POST", post(port, "/member/offer", txn_body("OA3"), {{"Idempotency-Key", std::string(256, 'k')}}));  // 422
    check_answer(doc, "/member/offer", "POST", post(port, "/member/offer", "{not json"));  // 400
    check_unmatched(doc, get(port, "/member/offer"));  // 405
    check_answer(doc, "/ready", "GET", get(port, "/ready"));  // 503: no probe in tests
}

TEST_CASE("A body with several invalid fields is answered 422 listing every one, the detail naming the first", "[component]") {
    test_app app;
    const auto port = app.port(role::orchestrator);
    const json::value doc = fetch_document(port);
    const auto r = post(port, "/member/offer", R"({"memberId":"M 1","lastTransactionType":"refund","lastTransactionRevenueUsd":-3,"extra":1})");
    REQUIRE(r.status == 422);
    check_answer(doc, "/member/offer", "POST", r);
    const json::object body = json::parse(r.body).as_object();
    std::vector<std::string> fields;
    for (const json::value& e : body.at("errors").as_array()) fields.emplace_back(e.as_object().at("field").as_string());
    CHECK(fields == std::vector<std::string>{"memberId", "lastTransactionUtcTs", "lastTransactionType", "lastTransactionPointsBought",
                                             "lastTransactionRevenueUsd"});
    CHECK(body.at("detail").as_string() == "memberId: only letters, digits, '_' and '-' are allowed, got 'M 1'");
}

TEST_CASE("The orchestrator's upstream failures fit its document: 502, 503 with Retry-After, 504", "[component]") {
    // 503s count towards the breaker (a 500 would not open it): the first request gets 502, the next the open circuit.
    fake_upstream failing([](const request&) { return detail_response(http::status::service_unavailable, "down"); });
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.threads = 1;
        c.orchestrator.member_data_url = failing.url();
        c.orchestrator.breaker.min_calls = 1;
    });
    const auto port = app.port(role::orchestrator);
    const json::value doc = fetch_document(port);
    const auto bad_gateway = post(port, "/member/offer", txn_body("OU1"));
    CHECK(bad_gateway.status == 502);
    check_answer(doc, "/member/offer", "POST", bad_gateway);
    const auto open = post(port, "/member/offer", txn_body("OU2"));
    CHECK(open.status == 503);
    check_answer(doc, "/member/offer", "POST", open);

    const auto refused = closed_port();
    test_app down(all_roles & ~static_cast<std::uint8_t>(role::member_data),
                  [&](app_config& c) { c.orchestrator.member_data_url = "http://127.0.0.1:" + std::to_string(refused); });
    const auto timeout = post(down.port(role::orchestrator), "/member/offer", txn_body("OU3"));
    CHECK(timeout.status == 504);
    check_answer(doc, "/member/offer", "POST", timeout);
}

TEST_CASE("member-data's real answers fit its document", "[component]") {
    test_app app;
    const auto port = app.port(role::member_data);
    const json::value doc = fetch_document(port);
    check_common_answers(doc, port, "/member_data");
    check_answer(doc, "/member_data", "POST", post(port, "/member_data", txn_body("MD1", "2024-06-01 10:00:00", "gift")));
    const auto replay = post(port, "/member_data", txn_body("MD1", "2024-06-01 11:00:00"), {{"Idempotency-Key", "md-1"}});
    check_answer(doc, "/member_data", "POST", replay);
    check_answer(doc, "/member_data", "POST", post(port, "/member_data", txn_body("MD1", "2024-06-01 11:00:00"), {{"Idempotency-Key", "md-1"}}));
    check_answer(doc, "/member_data", "POST", post(port, "/member_data", txn_body("MD1", "2024-06-01 12:00:00"), {{"Idempotency-Key", "md-1"}}));  // 422
    check_answer(doc, "/member_data", "POST", post(port, "/member_data", R"({"memberId":""})"));  // 422
    check_answer(doc, "/member_data", "POST", post(port, "/member_data", "nope"));  // 400
    check_answer(doc, "/member_data/{memberId}", "GET", get(port, "/member_data/MD1"));
    check_answer(doc, "/member_data/{memberId}", "GET", get(port, "/member_data/nobody"));  // 404
    check_unmatched(doc, http_call(port, http::verb::put, "/member_data/MD1"));  // 405
}

TEST_CASE("prediction's and offer-engine's real answers fit their documents", "[component]") {
    test_app app;
    const auto pp = app.port(role::prediction);
    const json::value pdoc = fetch_document(pp);
    check_common_answers(pdoc, pp, "/ml/ats/predict");
    for (const char* path : {"/ml/ats/predict", "/ml/resp/predict"}) {
        check_answer(pdoc, path, "POST", post(pp, path, features_body));
        check_answer(pdoc, path, "POST", post(pp, path, R"({"AVG_POINTS_BOUGHT":"1","DAYS_SINCE_LAST_TRANSACTION":-1})"));  // 422
        check_answer(pdoc, path, "POST", post(pp, path, "[1,"));  // 400
    }
    const auto op = app.port(role::offer_engine);
    const json::value odoc = fetch_document(op);
    check_common_answers(odoc, op, "/offer/assign");
    check_answer(odoc, "/offer/assign", "POST", post(op, "/offer/assign", R"({"ats_prediction":400,"resp_prediction":0.5})"));
    check_answer(odoc, "/offer/assign", "POST", post(op, "/offer/assign", R"({"ats_prediction":1,"resp_prediction":0.5})"));
    const auto both = post(op, "/offer/assign", R"({"resp_prediction":"x"})");
    check_answer(odoc, "/offer/assign", "POST", both);
    CHECK(json::parse(both.body).at("errors").as_array().size() == 2);
    check_answer(odoc, "/offer/assign", "POST", post(op, "/offer/assign", "}"));  // 400
}

TEST_CASE("With credentials the document names the Bearer scheme where the guard applies, and 401 and 429 fit it", "[component]") {
    const std::string key = "docs-0123456789abcdef-secret";
    const std::string keys_path = write_temp_file("keys", *key_file_line("docs", key) + "\n");
    {
        test_app app(all_roles, [&](app_config& c) {
            c.security.api_keys_file = keys_path;
            c.security.rate = {0.01, 1};
        });
        const auto port = app.port(role::orchestrator);
        const json::value doc = fetch_document(port);  // open without a credential
        CHECK(get(port, "/docs").status == 200);
        CHECK(doc.at("components").as_object().at("securitySchemes").as_object().contains("bearerAuth"));
        const auto security_of = [&](const char* path, const char* method) {
            return doc.at("paths").at(path).at(method).at("security").as_array();
        };
        CHECK(security_of("/member/offer", "post").size() == 1);
        CHECK(security_of("/health", "get").empty());
        CHECK(security_of("/openapi.json", "get").empty());
        CHECK(security_of("/docs", "get").empty());
        CHECK(security_of("/metrics", "get").empty());  // --metrics-auth auto on loopback
        check_answer(doc, "/member/offer", "POST", post(port, "/member/offer", txn_body("AU1")));  // 401
        const std::map<std::string, std::string> bearer{{"Authorization", "Bearer " + key}};
        check_answer(doc, "/member/offer", "POST", post(port, "/member/offer", txn_body("AU1"), bearer));  // 200
        check_answer(doc, "/member/offer", "POST", post(port, "/member/offer", txn_body("AU2"), bearer));  // 429
        // Services without --service-auth: no scheme at all.
        const json::value md = fetch_document(app.port(role::member_data));
        CHECK_FALSE(md.at("components").as_object().contains("securitySchemes"));
        CHECK_FALSE(md.at("paths").at("/member_data").at("post").at("responses").as_object().contains("401"));
    }
    std::remove(keys_path.c_str());
}

TEST_CASE("The docs page is self-contained and shows every route and status of the document", "[component]") {
    test_app app;
    for (role r : every_role) {
        INFO("listener " << to_string(r));
        const auto page = get(app.port(r), "/docs");
        REQUIRE(page.status == 200);
        CHECK(header(page, "Content-Type") == "text/html; charset=utf-8");
        CHECK(header(page, "Content-Security-Policy").starts_with("default-src 'none'"));
        for (const char* fetched : {"<script", "<link", "src=", "@import", "url(", "@font-face"}) {
            INFO(fetched);
            CHECK(page.body.find(fetched) == std::string::npos);
        }
        const json::value doc = fetch_document(app.port(r));
        for (const auto& [path, item] : doc.at("paths").as_object()) {
            CHECK(page.body.find("<code>" + std::string(path) + "</code>") != std::string::npos);
            for (const auto& [method, op] : item.as_object())
                for (const auto& [status, resp] : op.at("responses").as_object()) {
                    std::string cell = ">";
                    cell.append(status.data(), status.size()).append("</td>");
                    CHECK(page.body.find(cell) != std::string::npos);
                }
        }
        for (const auto& [name, s] : doc.at("components").at("schemas").as_object())
            CHECK(page.body.find("id=\"schema-" + std::string(name) + "\"") != std::string::npos);
    }
}

TEST_CASE("The schema validator checks the subset it claims and refuses other keywords", "[unit]") {
    const json::value root = json::parse(R"({"defs":{"Id":{"type":"string","minLength":1,"maxLength":3,"pattern":"^[a-z]+$"}},
        "obj":{"type":"object","required":["id","n"],"properties":{"id":{"$ref":"#/defs/Id"},"n":{"type":"integer","minimum":0,"maximum":9},
        "e":{"enum":["a","b"]},"l":{"type":"array","minItems":1,"items":{"type":"number"}}},"additionalProperties":false}})");
    const json::value& schema = root.at("obj");
    const auto problems = [&](const char* text) { return schema_violations(json::parse(text), schema, root); };
    CHECK(problems(R"({"id":"ab","n":3,"e":"a","l":[1,2.5]})").empty());
    CHECK(problems(R"({"id":"ab","n":3.0})").empty());  // an integral double is an integer
    CHECK(problems(R"({"id":"ab"})").size() == 1);               // required
    CHECK(problems(R"({"id":"ab","n":3,"x":1})").size() == 1);   // additionalProperties
    CHECK(problems(R"({"id":"abcd","n":3})").size() == 1);       // maxLength
    CHECK(problems(R"({"id":"AB","n":3})").size() == 1);         // pattern
    CHECK(problems(R"({"id":"ab","n":10})").size() == 1);        // maximum
    CHECK(problems(R"({"id":"ab","n":-1})").size() == 1);        // minimum
    CHECK(problems(R"({"id":"ab","n":1.5})").size() == 1);       // type integer
    CHECK(problems(R"({"id":"ab","n":1,"e":"c"})").size() == 1); // enum
    CHECK(problems(R"({"id":"ab","n":1,"l":[]})").size() == 1);  // minItems
    CHECK(problems(R"({"id":"ab","n":1,"l":["x"]})").size() == 1);  // items
    CHECK(problems(R"([])").size() == 1);                        // type object
    const json::value odd = json::parse(R"({"type":"string","oneOf":[]})");
    CHECK(schema_violations(json::value("x"), odd, odd).size() == 1);
    CHECK(schema_defects(odd, odd).size() == 1);
    CHECK(schema_defects(json::parse(R"({"$ref":"#/nowhere"})"), odd).size() == 1);
}
