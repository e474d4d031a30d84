// Route tables of the three external-system stand-ins: member-data, prediction, offer-engine.
#pragma once

#include <memory>
#include <string>

#include "offerd/net/router.hpp"
#include "offerd/store/record_log.hpp"

namespace offerd {

class history_store;

// member-data's storage, from flags; app/runtime builds the store from it.
struct member_data_options {
    std::string journal;                             // file that records every stored write and is replayed on start ("" = none)
    fsync_policy journal_fsync = fsync_policy::always;  // always: durable before the answer, one fdatasync per group of writes
    std::string store_url;  // postgresql://...: the histories live there (several member-data processes may share it); "" = memory/journal
};

// GET /health, POST /member_data, GET /member_data/{memberId}, a route table over `store`. A
// POST carrying an Idempotency-Key already stored is answered with the stored object, with
// `Idempotent-Replayed: true`, and not stored again; the same key with another transaction
// is 422; a write the store cannot make durable is 503.
std::shared_ptr<router> make_member_data_router(std::shared_ptr<history_store> store);
// GET /health, POST /ml/ats/predict, POST /ml/resp/predict.
// fault_share: the share of request bodies (by a hash of their bytes, so the same features always
// fail) answered 500, as a prediction service with a bug for some inputs would; 0: none.
std::shared_ptr<router> make_prediction_router(double fault_share = 0);
// GET /health, POST /offer/assign.
std::shared_ptr<router> make_offer_engine_router();

// GET /health -> 200 {"status":"ok"}
void add_health_route(router& r);

}  // namespace offerd
