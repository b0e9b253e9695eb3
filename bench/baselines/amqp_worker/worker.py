#!/usr/bin/env python3
"""The original design on RabbitMQ, as a baseline: a Python worker holding the model, fed by a
queue, one message at a time.

Usage (bench/amqp_bench.py starts it; the venv's Python, torch and pika):
    .venv/bin/python bench/baselines/amqp_worker/worker.py --url amqp://u:p@127.0.0.1:P/%2F \
        --queue baseline.requests --model M/1/model.pt --shape 256 --threads 2

What a Celery-style RPC worker does: basic_qos(prefetch_count=1), take ONE message, run the
model on its ONE item (no batching), publish the answer to the message's reply_to with its
correlation_id, acknowledge, take the next. The messages are modeld's (docs/amqp.md): the body
a modeld.redis.RequestEnvelope holding a ModelInferRequest, the answer a ReplyEnvelope holding
a ModelInferResponse (outputs in raw_output_contents), so one load generator drives both this
worker and modeld. The queue is declared durable, as modeld declares its own; the answer is
published with the request's delivery_mode and without publisher confirms (a plain
basic_publish, then basic_ack), which is what such workers usually do.
"""

import argparse

import pika
import torch

from modeld._proto import redis_pb2

INVALID_ARGUMENT, INTERNAL = 3, 13


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="amqp://user:password@host:port/vhost")
    parser.add_argument("--queue", default="baseline.requests")
    parser.add_argument("--model", required=True, help="TorchScript file")
    parser.add_argument("--shape", required=True, help="one item's dims, e.g. 256 or 1,28,28")
    parser.add_argument("--output", default="logits", help="the output's name in the answer")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    shape = [1] + [int(d) for d in args.shape.split(",")]
    model = torch.jit.load(args.model).eval()
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(args.queue, durable=True)
    channel.basic_qos(prefetch_count=1)

    def answer(request):
        reply = redis_pb2.ReplyEnvelope(request_id=request.request_id)
        if request.WhichOneof("payload") != "infer" or len(request.infer.raw_input_contents) != 1:
            reply.code, reply.message = INVALID_ARGUMENT, "expected one input in raw_input_contents"
            return reply
        infer = request.infer
        try:
            x = torch.frombuffer(bytearray(infer.raw_input_contents[0]),
                                 dtype=torch.float32).reshape(shape)
            with torch.inference_mode():
                y = model(x)
        except Exception as error:  # a wrong tensor, a failing model: answered, never fatal
            reply.code, reply.message = INTERNAL, str(error)
            return reply
        response = reply.infer
        response.model_name, response.id = infer.model_name, infer.id
        response.outputs.add(name=args.output, datatype="FP32", shape=list(y.shape))
        response.raw_output_contents.append(y.numpy().tobytes())
        return reply

    def on_message(channel, method, properties, body):
        request = redis_pb2.RequestEnvelope()
        try:
            request.ParseFromString(body)
            reply = answer(request)
        except Exception as error:  # not an envelope
            reply = redis_pb2.ReplyEnvelope(code=INVALID_ARGUMENT, message=str(error))
        if properties.reply_to:
            channel.basic_publish(
                exchange="", routing_key=properties.reply_to, body=reply.SerializeToString(),
                properties=pika.BasicProperties(correlation_id=properties.correlation_id,
                                                delivery_mode=properties.delivery_mode))
        channel.basic_ack(method.delivery_tag)

    channel.basic_consume(args.queue, on_message)
    print("worker ready", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    main()
