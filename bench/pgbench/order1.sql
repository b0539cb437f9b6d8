-- The SQL an order with one line amounts to, as one transaction: insert the order and its line,
-- update the inventory row, insert the payment. Tables are the node's own (emporium migrate into
-- the schemas ceiling_orders and ceiling_inventory); -D skus=N.
\set oid random(1, 9000000000000000000)
\set s1 random(0, :skus - 1)
BEGIN;
INSERT INTO ceiling_orders.orders (id, customer_id, status, failure_reason, total_cents, currency, payment_id, created_at_ms, updated_at_ms, version)
  VALUES ('ord_' || :oid, 'bench', 'confirmed', '', 1999, 'USD', 'pay_' || :oid, 0, 0, 1);
INSERT INTO ceiling_orders.order_lines (order_id, line_no, sku, quantity, unit_price_cents)
  VALUES ('ord_' || :oid, 0, 'sku-' || :s1, 1, 1999);
UPDATE ceiling_inventory.items SET reserved = reserved + 1, version = version + 1 WHERE sku = 'sku-' || :s1;
INSERT INTO ceiling_orders.payments (id, order_id, status, failure_reason, brand, last4, exp_month, exp_year, provider_ref, amount_cents, currency, version)
  VALUES ('pay_' || :oid, 'ord_' || :oid, 'captured', '', 'visa', '4242', 12, 2030, 'sim', 1999, 'USD', 1);
END;
