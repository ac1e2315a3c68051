<?php
// A script that loads far more than it should (a whole table into an array): the task's
// memory limit stops it. PHP's own memory_limit is lifted by the task's command (-d).
echo "memory_hog: loading everything\n";
flush();
$blocks = [];
for ($i = 0; $i < 64; $i++) {
    $blocks[] = str_repeat(chr(65 + $i % 26), 8 * 1024 * 1024); // 8 MiB each, 512 MiB in all
    usleep(20000);
}
sleep(60);
