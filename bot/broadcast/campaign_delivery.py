"""Campaigns on the broadcast engine: the same claim, prepare, lease, resume and clean-up as
alerts; a campaign supplies only how a chunk is sent.

- Its audience ((topics) x (areas + whole city)) is frozen once, when sending starts, as
  a set of its own that the engine's claim step scans.
- Without click tracking: one multicast per variant per chunk, tagged with the variant's
  customAggregationUnits name, with a retry key per chunk and variant.
- With click tracking every resident needs their own link, so it is one push per
  resident, many in flight under the shared push limiter. A resident's link token is
  derived from the campaign and the resident with the secret salt, so a resend carries
  the same link without storing who got which; each push's retry key is fixed the same
  way (409 = delivered).
- A campaign never goes out in the city's quiet hours: it waits for the morning
  (bot.broadcast.actions.send_campaign sets `not_before`; the job is scheduled then).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter

import redis

from bot.broadcast import campaigns
from bot.broadcast.engine import RETRY_NAMESPACE, Audience, ChunkResult, Engine
from bot.broadcast.queue import schedule_insights
from bot.core.keys import CAMPAIGNS_ACTIVE, campaign_key, sub_set_key
from bot.line.api import LineApi
from bot.line.bulk_push import BulkPusher, Push
from bot.line.sending import send_with_retries
from bot.settings import Settings

# Stands in for a resident's link in a variant's message, built once per variant.
LINK = "https://link.invalid/__link__"
# Pushes in flight per worker: LINE answers in about 0.1 s, so 1,000 pushes a second need
# about a hundred waiting at once (bot.line.bulk_push keeps them on one event loop).
PUSH_LANES_PER_CHUNK_LANE = 4


class CampaignKind:
    active = CAMPAIGNS_ACTIVE

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.public_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        self.salt = settings.id_salt.get_secret_value()
        self.lanes = PUSH_LANES_PER_CHUNK_LANE * settings.alert_send_concurrency
        self.settings = settings
        self._pusher: BulkPusher | None = None
        self._lock = threading.Lock()
        self._specs: dict[str, campaigns.CampaignRequest] = {}
        self._frozen: set[str] = set()  # campaigns whose audience is known to be frozen
        self._templates: dict[tuple[str, str, str | None], str] = {}

    def key(self, item_id: str) -> str:
        return campaign_key(item_id)

    def spec(self, campaign_id: str) -> campaigns.CampaignRequest:
        if campaign_id not in self._specs:
            spec = campaigns.load(self.redis, campaign_id)
            assert spec is not None
            self._specs[campaign_id] = spec
        return self._specs[campaign_id]

    def tracked(self, campaign_id: str) -> bool:
        spec = self.spec(campaign_id)
        return spec.track_clicks and bool(spec.survey.url)

    def ready(self, engine: Engine, item_id: str, item: dict[str, str]) -> str | None:
        spec = campaigns.load(self.redis, item_id)
        if spec is None:
            return "unknown"
        self._specs[item_id] = spec
        if item.get("state") not in ("queued", "sending"):
            return f"not sent ({item.get('state')})"
        if float(item.get("not_before") or 0) > time.time():
            return "waiting for the end of quiet hours"
        return None

    def audience(self, engine: Engine, item_id: str, item: dict[str, str]) -> Audience:
        key, spec = campaign_key(item_id), self.spec(item_id)
        city = item["city"]
        source = f"{key}:audience"
        # asked once per run, not at every claim step
        if item_id not in self._frozen and self.redis.hget(key, "audience_ready") != "1":
            # Frozen once, with the flag in the same transaction: a crash leaves neither.
            pipe = self.redis.pipeline(transaction=True)
            pipe.sunionstore(source, [sub_set_key(city, "topic", t) for t in spec.topics])
            pipe.hset(key, mapping={"audience_ready": "1", "mode": "push per recipient (tracked links)"
                                    if self.tracked(item_id) else "multicast per variant"})
            pipe.execute()
        self._frozen.add(item_id)
        area_ids = item["city_areas"].split(",") if "all" in spec.areas else spec.areas
        return Audience(source, [sub_set_key(city, "area", a) for a in sorted(set(area_ids) | {"all"})])

    def capped(self, item: dict[str, str]) -> bool:
        return False  # one campaign, sent once: the alerts' daily cap is for alerts

    def send(self, engine: Engine, item_id: str, item: dict[str, str], chunk: str, recipients: list[str],
             retry_key: str) -> ChunkResult:
        spec = self.spec(item_id)
        variant_of = {user: campaigns.assign_variant(item_id, user, spec.variants).name for user in recipients}
        if self.tracked(item_id):
            return self._push_each(engine, item_id, chunk, variant_of)
        return self._multicast_per_variant(engine, item_id, chunk, variant_of)

    def _template(self, campaign_id: str, variant: str, link: str | None) -> str:
        """A variant's messages array in wire form (JSON), built once: the SDK models are
        slow to build, and a tracked push only swaps the link in."""
        if (campaign_id, variant, link) not in self._templates:
            spec = self.spec(campaign_id)
            chosen = next(v for v in spec.variants if v.name == variant)
            message = campaigns.message_for(campaign_id, spec, chosen, link).to_dict()
            self._templates[(campaign_id, variant, link)] = json.dumps([message], ensure_ascii=False)
        return self._templates[(campaign_id, variant, link)]

    def _push_each(self, engine: Engine, campaign_id: str, chunk: str, variant_of: dict[str, str]) -> ChunkResult:
        key = campaign_key(campaign_id)
        pushed_key = f"{key}:pushed:{chunk}"
        already = set(self.redis.smembers(pushed_key))  # an earlier, interrupted pass
        todo = [user for user in variant_of if user not in already]
        tokens = {user: campaigns.link_token(self.salt, campaign_id, user) for user in todo}
        # The links exist before the first push that carries them (a resend rewrites the same).
        campaigns.store_links(self.redis, campaign_id, {tokens[u]: variant_of[u] for u in todo},
                              self.spec(campaign_id).survey.url or "")
        pushes = [Push(user, self._template(campaign_id, variant_of[user], LINK).replace(
                           LINK, f"{self.public_url}/r/{tokens[user]}"),
                       str(uuid.uuid5(RETRY_NAMESPACE, f"{campaign_id}:{user}")),
                       [campaigns.unit_name(campaign_id, variant_of[user])]) for user in todo]
        with self._lock:  # chunks run on several threads: one pusher (one event loop) for all
            if self._pusher is None:
                self._pusher = BulkPusher(self.settings, self.lanes)
        results = self._pusher.send(pushes, engine.push_limiter, engine.lost)
        accepted = [push.to for push, result in zip(pushes, results) if result.ok]
        if accepted:  # recorded after the pushes: one missed record costs a resend, answered 409
            self.redis.sadd(pushed_key, *accepted)
        if any(result.monthly_limit for result in results):
            return ChunkResult(0, 0, monthly_limit=True)
        delivered = already | set(accepted)
        failed = [result.status for result in results if not result.ok]
        return ChunkResult(len(delivered), len(failed), status=failed[0] if failed else 200,
                           units=Counter(variant_of[u] for u in delivered if u in variant_of))

    def _multicast_per_variant(self, engine: Engine, campaign_id: str, chunk: str,
                               variant_of: dict[str, str]) -> ChunkResult:
        done_key = f"{campaign_key(campaign_id)}:multicast:{chunk}"
        by_variant: dict[str, list[str]] = {}
        for user, variant in variant_of.items():
            by_variant.setdefault(variant, []).append(user)
        status = 200
        for variant, users in sorted(by_variant.items()):
            if self.redis.sismember(done_key, variant):
                continue
            messages = json.loads(self._template(campaign_id, variant, self.spec(campaign_id).survey.url))
            retry_key = str(uuid.uuid5(RETRY_NAMESPACE, f"{campaign_id}:{chunk}:{variant}"))
            unit = campaigns.unit_name(campaign_id, variant)
            result = send_with_retries(lambda: engine.api.multicast(users, messages, retry_key, [unit]),
                                       engine.multicast_limiter)
            if result.monthly_limit:
                return ChunkResult(0, 0, monthly_limit=True)
            if result.ok:
                self.redis.sadd(done_key, variant)
            else:
                status = result.status
        sent = self.redis.smembers(done_key)
        delivered = {v: len(users) for v, users in by_variant.items() if v in sent}
        failed = sum(len(users) for v, users in by_variant.items() if v not in sent)
        return ChunkResult(sum(delivered.values()), failed, status=status, units=delivered)

    def leftovers(self, item_id: str, chunks: list[str]) -> list[str]:
        key = campaign_key(item_id)
        return [f"{key}:audience"] + [k for c in chunks for k in (f"{key}:pushed:{c}", f"{key}:multicast:{c}")]

    def finished(self, engine: Engine, item_id: str, item: dict[str, str]) -> None:
        if engine.redis_url:  # LINE's open and click figures come in later: first fetch in an hour
            schedule_insights(engine.redis_url, item_id, dt.timedelta(hours=1))

    def close(self) -> None:
        if self._pusher is not None:
            self._pusher.close()
            self._pusher = None


class CampaignDelivery(Engine):
    """The engine for campaigns: `CampaignDelivery(client, api, settings).run(campaign_id)`."""

    def __init__(self, client: redis.Redis, api: LineApi, settings: Settings) -> None:
        super().__init__(client, api, settings, CampaignKind(client, settings))
