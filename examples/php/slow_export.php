<?php
// A script that hangs (a remote API that never answers): the task's timeout stops it.
echo "slow_export: waiting for the remote API\n";
flush();
sleep(3600);
