#include "schema/client_protocol.h"

namespace raftkv::wire {

std::string_view to_string(Op op) {
  switch (op) {
    case Op::kGet:
      return "Get";
    case Op::kPut:
      return "Put";
    case Op::kAppend:
      return "Append";
    case Op::kDelete:
      return "Delete";
    case Op::kStatus:
      return "Status";
  }
  return "UnknownOp";
}

std::string_view to_string(ReplyStatus status) {
  switch (status) {
    case ReplyStatus::kOk:
      return "Ok";
    case ReplyStatus::kNotFound:
      return "NotFound";
    case ReplyStatus::kNotLeader:
      return "NotLeader";
    case ReplyStatus::kBusy:
      return "Busy";
    case ReplyStatus::kTimeout:
      return "Timeout";
    case ReplyStatus::kBadRequest:
      return "BadRequest";
    case ReplyStatus::kTooLarge:
      return "TooLarge";
    case ReplyStatus::kInternal:
      return "Internal";
  }
  return "UnknownStatus";
}

}  // namespace raftkv::wire
