-- wrk script: KServe V2 REST JSON inference on identity_fp32 over keep-alive connections.
-- One FP32 [1, 16] tensor in, the same 16 values back as JSON.
--
--   build/bin/modeld --model-repository=examples/models --http-address=127.0.0.1:8000 &
--   wrk -t2 -c16 -d10s -s bench/http/kserve_json_identity_fp32.lua http://127.0.0.1:8000
--
-- wrk counts any non-2xx answer under "Non-2xx or 3xx responses": a valid run has none.
wrk.method = "POST"
wrk.path = "/v2/models/identity_fp32/infer"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":' ..
           '[0.5,-1.25,2,3.75,0.1,1e-3,-7,8.5,9,10.25,-11,12,13.5,0.333,15,16]}]}'
