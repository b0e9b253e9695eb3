// The scheduling priority of the threads that run models, below the transports' threads.
//
// On a machine whose cores the model's threads keep busy (a batch computing on every core), a
// gRPC or HTTP thread woken by a new request otherwise waits its turn behind them: refusals
// under overload then take milliseconds, and requests queue inside the transport before any
// admission check sees them. With the model threads at a higher nice value (a lower weight for
// Linux's scheduler), a transport thread that wakes runs at once and the model takes every
// cycle the transports leave. The nice value is per thread on Linux and inherited by the
// threads a thread creates, so it is set at the start of each model thread, before the
// framework creates its intra-op pool there.
#pragma once

namespace modeld::common {

// How much nicer than the rest of the process model threads run (--model-thread-nice); 0, the
// default here, leaves them as they are. Set once at start, before any model thread runs.
void SetModelThreadNice(int nice);
int ModelThreadNice();

// Raises the calling thread's nice value by ModelThreadNice() (nothing when it is 0). Never
// fails: raising one's own nice value needs no privilege, and a refusal would only leave it.
void EnterModelThread();

// The calling thread's nice value.
int CurrentThreadNice();

}  // namespace modeld::common
