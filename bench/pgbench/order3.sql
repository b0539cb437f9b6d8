-- The SQL an order with three lines amounts to, as one transaction (see order1.sql). Line i takes
-- a sku from the i-th third of [0, skus), so rows are always locked in the same order (no deadlock).
\set oid random(1, 9000000000000000000)
\set s1 random(0, :skus / 3 - 1)
\set s2 random(:skus / 3, 2 * (:skus / 3) - 1)
\set s3 random(2 * (:skus / 3), 3 * (:skus / 3) - 1)
BEGIN;
INSERT INTO ceiling_orders.orders (id, customer_id, status, failure_reason, total_cents, currency, payment_id, created_at_ms, updated_at_ms, version)
  VALUES ('ord_' || :oid, 'bench', 'confirmed', '', 5997, 'USD', 'pay_' || :oid, 0, 0, 1);
INSERT INTO ceiling_orders.order_lines (order_id, line_no, sku, quantity, unit_price_cents)
  VALUES ('ord_' || :oid, 0, 'sku-' || :s1, 1, 1999), ('ord_' || :oid, 1, 'sku-' || :s2, 1, 1999),
         ('ord_' || :oid, 2, 'sku-' || :s3, 1, 1999);
UPDATE ceiling_inventory.items SET reserved = reserved + 1, version = version + 1 WHERE sku = 'sku-' || :s1;
UPDATE ceiling_inventory.items SET reserved = reserved + 1, version = version + 1 WHERE sku = 'sku-' || :s2;
UPDATE ceiling_inventory.items SET reserved = reserved + 1, version = version + 1 WHERE sku = 'sku-' || :s3;
INSERT INTO ceiling_orders.payments (id, order_id, status, failure_reason, brand, last4, exp_month, exp_year, provider_ref, amount_cents, currency, version)
  VALUES ('pay_' || :oid, 'ord_' || :oid, 'captured', '', 'visa', '4242', 12, 2030, 'sim', 5997, 'USD', 1);
END;
