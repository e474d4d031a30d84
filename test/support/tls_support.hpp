// TLS test material made at test time with the openssl CLI (a CA, certificates it signs, a CA that
// signed none of them) and an HTTPS call through the project's own http_client.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "offerd/net/url.hpp"
#include "test_support.hpp"

namespace offerd::test {

// A fresh directory holding, all PEM:
//   ca.pem                      the test CA
//   server.pem / server.key     a certificate from it for DNS:localhost and IP:127.0.0.1
//   other-name.pem / .key       a certificate from it for DNS:other.example only
//   other-ca.pem                a CA that signed nothing here (a client trusting it rejects both)
// Throws std::runtime_error with openssl's output when a step fails. The directory is removed
// by the destructor.
class test_pki {
public:
    test_pki();
    ~test_pki();
    test_pki(const test_pki&) = delete;
    test_pki& operator=(const test_pki&) = delete;
    std::string ca() const { return dir_ + "/ca.pem"; }
    std::string cert() const { return dir_ + "/server.pem"; }
    std::string key() const { return dir_ + "/server.key"; }
    std::string other_name_cert() const { return dir_ + "/other-name.pem"; }
    std::string other_name_key() const { return dir_ + "/other-name.key"; }
    std::string other_ca() const { return dir_ + "/other-ca.pem"; }
    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
};

// One HTTPS call with http_client on a fresh connection to host:port (host "localhost" or
// "127.0.0.1"), verified against ca_file. status 0 and error set when it failed below HTTP
// (error.code upstream_bad_response for a rejected certificate).
http_result https_call(const std::string& host, std::uint16_t port, const std::string& ca_file, http::verb method,
                       const std::string& target, const std::string& body = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The same to an https url carrying its own tls_context.
http_result https_call(const url& where, http::verb method, const std::string& target, const std::string& body = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace offerd::test
