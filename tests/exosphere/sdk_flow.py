"""A whole Exosphere workflow with the SDK's own client and runtime
(exospherehost 0.0.3) against a state manager: node-host's hub in
tests/e2e/exosphere.rs.

Usage: python sdk_flow.py STATE_MANAGER_URL KEY NAMESPACE

It starts the SDK's Runtime with four Python nodes, upserts a graph with the
SDK's StateManager (the secrets, a retry policy and a store key), triggers a
run, waits (bounded) until every state of the run has settled, and prints the
run's states as JSON on its last stdout line:

  Split (root, text from the store) fans out one state per word ->
  Shout (reads secret `suffix`) -> Flaky (fails on its first attempt, then
  passes, so it is retried) ; a word `drop` is pruned by Shout, and a word
  `later` makes Shout ask to be run again after 300 ms, once.
"""

import asyncio
import json
import sys
from datetime import timedelta

import aiohttp
from pydantic import BaseModel

from exospherehost import (
    BaseNode,
    GraphNodeModel,
    PruneSignal,
    ReQueueAfterSignal,
    RetryPolicyModel,
    Runtime,
    StateManager,
    StoreConfigModel,
)

ATTEMPTS = {}


class Split(BaseNode):
    class Inputs(BaseModel):
        text: str

    class Outputs(BaseModel):
        word: str

    async def execute(self):
        return [self.Outputs(word=word) for word in self.inputs.text.split()]


class Shout(BaseNode):
    class Inputs(BaseModel):
        word: str

    class Outputs(BaseModel):
        loud: str

    class Secrets(BaseModel):
        suffix: str

    async def execute(self):
        word = self.inputs.word
        if word == "drop":
            raise PruneSignal({"dropped": word})
        if word == "later":
            ATTEMPTS[word] = ATTEMPTS.get(word, 0) + 1
            if ATTEMPTS[word] == 1:
                raise ReQueueAfterSignal(timedelta(milliseconds=300))
        return self.Outputs(loud=word.upper() + self.secrets.suffix)


class Flaky(BaseNode):
    class Inputs(BaseModel):
        loud: str

    class Outputs(BaseModel):
        done: str

    async def execute(self):
        key = "flaky:" + self.inputs.loud
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        if ATTEMPTS[key] == 1:
            raise RuntimeError(f"first attempt at {self.inputs.loud} fails")
        return self.Outputs(done=self.inputs.loud)


SETTLED = {"SUCCESS", "ERRORED", "PRUNED", "RETRY_CREATED", "NEXT_CREATED_ERROR", "LEASE_EXPIRED"}


async def main():
    url, key, namespace = sys.argv[1:4]
    runtime = Runtime(
        namespace=namespace,
        name="sdk-runtime",
        nodes=[Split, Shout, Flaky],
        state_manager_uri=url,
        key=key,
        poll_interval=0.1,
    )
    running = runtime.start()
    await asyncio.sleep(1.0)  # it registers before it polls

    manager = StateManager(namespace=namespace, state_manager_uri=url, key=key)
    nodes = [
        GraphNodeModel(
            node_name="Split", namespace=namespace, identifier="split",
            inputs={"text": "${{ store.words }}"}, next_nodes=["shout"],
        ),
        GraphNodeModel(
            node_name="Shout", namespace=namespace, identifier="shout",
            inputs={"word": "${{ split.outputs.word }}"}, next_nodes=["flaky"],
        ),
        GraphNodeModel(
            node_name="Flaky", namespace=namespace, identifier="flaky",
            inputs={"loud": "${{ shout.outputs.loud }}"},
        ),
    ]
    await manager.upsert_graph(
        "words",
        nodes,
        secrets={"suffix": "!"},
        retry_policy=RetryPolicyModel(max_retries=2, strategy="FIXED", backoff_factor=100),
        store_config=StoreConfigModel(required_keys=["words"]),
        polling_interval=0.1,
    )
    triggered = await manager.trigger("words", store={"words": "ada drop later"})
    run_id = triggered["run_id"]

    states = []
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            endpoint = f"{url}/v0/namespace/{namespace}/states/run/{run_id}/graph"
            async with session.get(endpoint, headers={"x-api-key": key}) as response:
                states = (await response.json())["states"]
            flaky_done = [s for s in states if s["identifier"] == "flaky" and s["status"] == "SUCCESS"]
            if len(flaky_done) == 2 and all(s["status"] in SETTLED for s in states):
                break
            await asyncio.sleep(0.1)
    running.cancel()
    print(json.dumps({"run_id": run_id, "states": states}))


if __name__ == "__main__":
    asyncio.run(main())
