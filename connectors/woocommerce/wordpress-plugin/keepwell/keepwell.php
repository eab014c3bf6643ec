<?php
/**
 * Plugin Name:       Keepwell for WooCommerce
 * Plugin URI:        https://github.com/keepwell/keepwell
 * Description:       Asks what Keepwell needs and WooCommerce does not keep: a marketing opt-in at checkout and on the account page (with its time and source, withdrawable), a separate opt-in to marketing text messages, an optional birthday, and what a purchase is for (the occasion question); a link that applies a coupon to the cart (?keepwell_coupon=CODE), which core WooCommerce lacks. Everything is stored as customer and order meta that Keepwell reads through WooCommerce's webhooks and REST API, which also learns to list only the customers changed since a given time.
 * Version:           1.0.0
 * Requires at least: 6.2
 * Requires PHP:      7.4
 * Requires Plugins:  woocommerce
 * Author:            Keepwell
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       keepwell
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

define( 'KEEPWELL_PLUGIN_DIR', plugin_dir_path( __FILE__ ) );

require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-meta.php';
require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-consent.php';
require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-sms.php';
require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-birthday.php';
require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-occasion.php';
require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-mailpoet.php';
require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-rest.php';
require_once KEEPWELL_PLUGIN_DIR . 'includes/class-keepwell-coupon-link.php';

add_action(
	'plugins_loaded',
	static function () {
		if ( ! class_exists( 'WooCommerce' ) ) {
			return;
		}
		Keepwell_Consent::init();
		Keepwell_Sms::init();
		Keepwell_Birthday::init();
		Keepwell_Occasion::init();
		Keepwell_MailPoet::init();
		Keepwell_Rest::init();
		Keepwell_Coupon_Link::init();
	}
);

add_action( 'woocommerce_init', array( 'Keepwell_Meta', 'register_block_checkout_fields' ) );
add_action( 'woocommerce_init', array( 'Keepwell_Sms', 'register_block_checkout_field' ) );

register_activation_hook( __FILE__, array( 'Keepwell_MailPoet', 'activate' ) );
