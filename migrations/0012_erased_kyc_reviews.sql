-- Reviews still pending for customers erased before erasure closed them (api/customers.py CustomerStore.erase):
-- closed unverified, so the compliance queue and the KYC report stop counting them.
UPDATE kyc_cases k
   SET status = 'rejected', reason = 'closed unverified: the customer was erased', decided_at = e.erased_at,
       decided_by = e.erased_by, updated_at = now()
  FROM erasures e
 WHERE e.customer_id = k.customer_id AND k.status = 'pending';
