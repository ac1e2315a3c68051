<?php
// A well-behaved V2 cron script: does its work, prints a summary, exits 0.
$started = microtime(true);
$rows = [];
for ($i = 0; $i < 10000; $i++) {
    $rows[] = ['sku' => sprintf('SKU%05d', $i), 'qty' => $i % 17];
}
$total = array_sum(array_column($rows, 'qty'));
printf("stock_sync: %d products, %d units, %.3f s\n", count($rows), $total, microtime(true) - $started);
exit(0);
