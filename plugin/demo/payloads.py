"""The webhook bodies the demo stores send: the platforms' published payload examples
(plugin/demo/samples) with the story's people, money and dates."""
from __future__ import annotations

import copy
import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from plugin.demo.cast import CENTS, Order, Person

SAMPLES = Path(__file__).resolve().parent / "samples"
SHOP_TZ = timezone(timedelta(hours=-5))  # the Shopify store's time zone, as in Shopify's samples
CONSENT_META_KEY = "_keepwell_marketing_opt_in"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def money(value) -> str:
    return str(Decimal(value).quantize(CENTS))


class Payloads:
    """Builds each platform's webhook bodies; mixed into the Storefront, whose clock, stores and
    orders they read."""

    # --- Shopify payloads (REST webhook shapes, from Shopify's published examples) -----------

    def _shopify_time(self, t: datetime) -> str:
        return t.astimezone(SHOP_TZ).replace(microsecond=0).isoformat()

    def _shopify_customer(self, person: Person) -> dict:
        c = sample("shopify_customers_create.json")
        now = self._shopify_time(self.clock())
        c.update(id=int(person.id), admin_graphql_api_id=f"gid://shopify/Customer/{person.id}", created_at=now,
                 updated_at=now, first_name=person.first_name, last_name=person.last_name, email=person.email,
                 state="enabled", note=None)
        c["default_address"].update(customer_id=int(person.id), first_name=person.first_name,
                                    last_name=person.last_name, name=person.name, address1=person.street,
                                    phone=person.phone)
        return c

    def _shopify_consent(self, person: Person) -> dict:
        c = sample("shopify_customers_email_marketing_consent_update.json")
        c.update(customer_id=int(person.id), email_address=person.email)
        c["email_marketing_consent"] = {"state": "subscribed", "opt_in_level": "single_opt_in",
                                        "consent_updated_at": self._shopify_time(self.clock())}
        return c

    def _shopify_order(self, order: Order) -> dict:
        o = sample("shopify_orders_paid.json")
        person, now = order.person, self._shopify_time(order.at)
        number = 1000 + len([k for k in self.orders if k.startswith("shopify:")])
        subtotal, discount, total = money(order.subtotal - order.discount), money(order.discount), money(order.total)
        line_price = money(order.subtotal)
        o.update(
            id=int(order.id), admin_graphql_api_id=f"gid://shopify/Order/{order.id}", name=f"#{number}",
            number=number - 1000, order_number=number, email=person.email, contact_email=person.email,
            created_at=now, updated_at=now, processed_at=now, cancelled_at=None, cancel_reason=None,
            financial_status="paid", confirmed=True, test=False, buyer_accepts_marketing=person.consent,
            currency="USD", presentment_currency="USD", tags="", token=uuid.uuid4().hex,
            subtotal_price=subtotal, current_subtotal_price=subtotal, total_price=total, current_total_price=total,
            total_line_items_price=line_price, total_discounts=discount, current_total_discounts=discount,
            total_outstanding="0.00", total_tax="0.00", current_total_tax="0.00",
            subtotal_price_set=_set(subtotal), current_subtotal_price_set=_set(subtotal), total_price_set=_set(total),
            current_total_price_set=_set(total), total_line_items_price_set=_set(line_price),
            total_discounts_set=_set(discount), current_total_discounts_set=_set(discount),
            total_shipping_price_set=_set("0.00"), current_shipping_price_set=_set("0.00"),
            discount_codes=[{"code": order.code, "amount": discount, "type": "percentage"}] if order.code else [],
            discount_applications=[{"target_type": "line_item", "type": "discount_code", "value": "10.0",
                                    "value_type": "percentage", "allocation_method": "across",
                                    "target_selection": "all", "code": order.code}] if order.code else [],
            shipping_lines=[], refunds=[], fulfillments=[], returns=[],
            # cart attributes (the theme's occasion block) arrive as the order's note_attributes
            note_attributes=[{"name": k, "value": v} for k, v in order.occasion.items()],
        )
        o["order_status_url"] = f"https://{self.shopify.domain}/orders/{o['token']}/authenticate"
        template = o["line_items"][0]
        o["line_items"] = []
        for i, ((title, sku, price), qty) in enumerate(order.items):
            li = copy.deepcopy(template)
            product = 9_100_000_000 + _stable(sku) % 1_000_000
            li.update(id=int(order.id) * 10 + i, admin_graphql_api_id=f"gid://shopify/LineItem/{int(order.id) * 10 + i}",
                      name=title, title=title, sku=sku, price=price, price_set=_set(price), quantity=qty,
                      current_quantity=qty, fulfillable_quantity=qty, product_id=product, variant_id=product + 1,
                      vendor="Keepwell Demo Roasters", attributed_staffs=[])
            o["line_items"].append(li)
        customer = o["customer"]
        customer.update(id=int(person.id), admin_graphql_api_id=f"gid://shopify/Customer/{person.id}",
                        email=person.email, first_name=person.first_name, last_name=person.last_name,
                        created_at=now, updated_at=now, state="enabled")
        customer["default_address"].update(customer_id=int(person.id), first_name=person.first_name,
                                           last_name=person.last_name, name=person.name, address1=person.street,
                                           phone=person.phone)
        for address in ("billing_address", "shipping_address"):
            if o.get(address):
                o[address].update(first_name=person.first_name, last_name=person.last_name, name=person.name,
                                  address1=person.street, phone=person.phone)
        return o

    def _shopify_refund(self, order: Order, amount: str) -> dict:
        """A refunds/create body in Shopify's REST shape: no customer; the money in *_set objects."""
        now = self._shopify_time(self.clock())
        rid = int(order.id) * 10 + 9
        first = order.payload["line_items"][0]
        return {
            "id": rid, "admin_graphql_api_id": f"gid://shopify/Refund/{rid}", "order_id": int(order.id),
            "created_at": now, "processed_at": now, "note": "Returned unopened", "restock": True, "user_id": None,
            "duties": [], "order_adjustments": [], "refund_shipping_lines": [], "total_duties_set": _set("0.00"),
            "refund_line_items": [{
                "id": rid * 10, "line_item_id": first["id"], "quantity": first["quantity"], "restock_type": "return",
                "location_id": None, "subtotal": float(amount), "total_tax": 0, "subtotal_set": _set(amount),
                "total_tax_set": _set("0.00"),
                "line_item": {k: first[k] for k in ("id", "product_id", "variant_id", "title", "quantity", "price", "sku")},
            }],
            "transactions": [{
                "id": rid * 10 + 1, "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{rid * 10 + 1}",
                "order_id": int(order.id), "kind": "refund", "gateway": "shopify_payments", "status": "success",
                "message": "Transaction approved", "created_at": now, "processed_at": now, "test": False,
                "authorization": None, "parent_id": None, "amount": amount, "currency": None,
            }],
        }

    # --- WooCommerce payloads (the REST v3 resource, as core builds webhook bodies) ----------

    @staticmethod
    def _woo_time(t: datetime) -> str:
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")

    def _woo_customer(self, person: Person) -> dict:
        c = sample("woocommerce_customer.json")
        now = self._woo_time(self.clock())
        c.update(id=int(person.id), email=person.email, first_name=person.first_name, last_name=person.last_name,
                 username=person.email.split("@")[0], date_created=now, date_created_gmt=now, date_modified=now,
                 date_modified_gmt=now, is_paying_customer=False)
        c["billing"].update(first_name=person.first_name, last_name=person.last_name, email=person.email,
                            address_1=person.street, phone=person.phone)
        c["shipping"].update(first_name=person.first_name, last_name=person.last_name, address_1=person.street)
        c["meta_data"] = [{"id": int(person.id) * 100, "key": CONSENT_META_KEY, "value": "yes" if person.consent else "no"}]
        base = f"{self.woocommerce.domain}/wp-json/wc/v3/customers"
        c["_links"] = {"self": [{"href": f"{base}/{person.id}"}], "collection": [{"href": base}]}
        return c

    def _woo_order(self, order: Order) -> dict:
        o = sample("woocommerce_order.json")
        person, now = order.person, self._woo_time(order.at)
        o.update(id=int(order.id), number=order.id, order_key=f"wc_order_{uuid.uuid4().hex[:13]}",
                 created_via="checkout", version="9.4.2", status="processing", currency="USD",
                 date_created=now, date_created_gmt=now, date_modified=now, date_modified_gmt=now,
                 date_paid=now, date_paid_gmt=now, date_completed=None, date_completed_gmt=None,
                 discount_total=money(order.discount), discount_tax="0.00", shipping_total="0.00", shipping_tax="0.00",
                 cart_tax="0.00", total=money(order.total), total_tax="0.00", customer_id=int(person.id),
                 customer_ip_address="203.0.113.24", transaction_id=f"ch_{uuid.uuid4().hex[:24]}",
                 payment_method="stripe", payment_method_title="Credit card",
                 tax_lines=[], shipping_lines=[], fee_lines=[], refunds=[])
        o["billing"].update(first_name=person.first_name, last_name=person.last_name, email=person.email,
                            address_1=person.street, phone=person.phone)
        o["shipping"].update(first_name=person.first_name, last_name=person.last_name, address_1=person.street)
        o["meta_data"] = [{"id": int(order.id) * 100, "key": CONSENT_META_KEY, "value": "yes" if person.consent else "no"}]
        # the WordPress plugin's checkout fields, stored as hidden order meta
        o["meta_data"] += [{"id": int(order.id) * 100 + i, "key": f"_{k}", "value": v}
                           for i, (k, v) in enumerate(order.occasion.items(), start=1)]
        template = o["line_items"][0]
        o["line_items"] = []
        share = order.discount / order.subtotal if order.subtotal else Decimal(0)
        for i, ((title, sku, price), qty) in enumerate(order.items):
            gross = Decimal(price) * qty
            net = (gross * (1 - share)).quantize(CENTS)
            li = copy.deepcopy(template)
            li.update(id=int(order.id) * 10 + i, name=title, sku=sku, product_id=100 + _stable(sku) % 900,
                      variation_id=0, quantity=qty, subtotal=money(gross), subtotal_tax="0.00", total=money(net),
                      total_tax="0.00", taxes=[], meta_data=[], price=float(Decimal(net) / qty))
            o["line_items"].append(li)
        o["coupon_lines"] = [{"id": int(order.id) * 10 + 9, "code": order.code.lower(), "discount": money(order.discount),
                              "discount_tax": "0.00", "meta_data": []}] if order.code else []
        base = f"{self.woocommerce.domain}/wp-json/wc/v3/orders"
        o["_links"] = {"self": [{"href": f"{base}/{order.id}"}], "collection": [{"href": base}],
                       "customer": [{"href": f"{self.woocommerce.domain}/wp-json/wc/v3/customers/{person.id}"}]}
        return o


def _stable(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _set(amount: str) -> dict:
    money = {"amount": amount, "currency_code": "USD"}
    return {"shop_money": money, "presentment_money": dict(money)}
