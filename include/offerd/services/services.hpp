// Route tables of the three external-system stand-ins: member-data, prediction, offer-engine.
#pragma once

#include <memory>

#include "offerd/net/router.hpp"

namespace offerd {

class member_store;

// GET /health, POST /member_data, GET /member_data/{memberId}.
std::shared_ptr<router> make_member_data_router(std::shared_ptr<member_store> store);
// GET /health, POST /ml/ats/predict, POST /ml/resp/predict.
std::shared_ptr<router> make_prediction_router();
// GET /health, POST /offer/assign.
std::shared_ptr<router> make_offer_engine_router();

// GET /health -> 200 {"status":"ok"}
void add_health_route(router& r);

}  // namespace offerd
