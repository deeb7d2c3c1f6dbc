'use strict';
module.exports = require('./lib/dgram');
